"""Outputs: only regular files or new paths are written, ``-`` is standard output, a dump is all or
nothing, and a plot's format follows its suffix."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import lazyaccept.scenario.artefacts as artefacts
from cli_helpers import run_cli
from lazyaccept.base.errors import ConfigError
from lazyaccept.base.fileio import atomic_write, check_writable
from lazyaccept.scenario.artefacts import DUMP_FILES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _one_error(r, needle: str) -> None:
    assert r.code == 2, (r.code, r.err)
    assert r.out_bytes == b""
    assert len(r.err_lines) == 1, r.err
    assert r.err_lines[0].startswith("lazyaccept: error: ") and needle in r.err_lines[0], r.err


# -- refusing what is not a regular file ------------------------------------------------------


def _odd_targets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    target = tmp_path / "real.png"
    target.write_bytes(b"keep")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    dev_link = tmp_path / "null.png"
    dev_link.symlink_to("/dev/null")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    device = tmp_path / "device.png"
    try:  # a copy of /dev/null's node (root may make one)
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        device = Path("/dev/null")
    return {
        "symlink to a file": (link, "is a symbolic link"),
        "symlink to /dev/null": (dev_link, "is a symbolic link (to /dev/null)"),
        "FIFO": (fifo, "is a FIFO (named pipe), not a regular file"),
        "directory": (folder, "is a directory, not a file"),
        "device": (device, "is a character device, not a regular file"),
    }


@pytest.mark.parametrize("kind", ["symlink to a file", "symlink to /dev/null", "FIFO", "directory", "device"])
def test_check_writable_refuses(tmp_path: Path, kind: str) -> None:
    path, needle = _odd_targets(tmp_path)[kind]
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        check_writable(path)
    with pytest.raises(ConfigError):
        atomic_write(path, b"data")


def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(ConfigError, match="is a socket"):
            check_writable(path)


@pytest.mark.parametrize("kind", ["symlink to a file", "symlink to /dev/null", "FIFO", "directory", "device"])
def test_boot_plot_refuses_odd_targets_and_leaves_them(tmp_path: Path, kind: str) -> None:
    path, needle = _odd_targets(tmp_path)[kind]
    before = os.lstat(path)
    _one_error(run_cli("boot", "--memory", "1G", "--plot", str(path)), needle)
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)  # not replaced
    assert (tmp_path / "real.png").read_bytes() == b"keep"


def test_calibrate_out_refuses_a_symlink_and_a_device(tmp_path: Path) -> None:
    link = tmp_path / "p.toml"
    link.symlink_to("/dev/null")
    _one_error(run_cli("calibrate", "--profile", "tdx", "--out", str(link)), "is a symbolic link")
    assert link.is_symlink()
    _one_error(run_cli("calibrate", "--profile", "tdx", "--out", "/dev/null"), "is a character device")


def test_regular_file_and_new_path_are_written(tmp_path: Path) -> None:
    old = tmp_path / "old.png"
    old.write_bytes(b"old")
    for path in (old, tmp_path / "new.png"):
        r = run_cli("boot", "--memory", "1G", "--plot", str(path))
        assert r.code == 0, r.err
        assert path.read_bytes().startswith(PNG_MAGIC)
        assert not path.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.png", "old.png"]  # no temporary left


# -- standard output --------------------------------------------------------------------------


def test_calibrate_out_dash_writes_the_toml_to_stdout(tmp_path: Path) -> None:
    # The plumbing, not the fit: tdx-fast has the smallest fit of the shipped profiles (3 rows).
    r = run_cli("calibrate", "--profile", "tdx-fast", "--out", "-")
    assert r.code == 0, r.err
    import tomllib

    doc = tomllib.loads(r.out)
    assert doc["profile"]["name"] == "tdx-fast"
    assert "fitted parameters" in r.err  # the report went to stderr, out of the TOML's way
    # The same TOML as written to a file.
    f = tmp_path / "tdx-fast.toml"
    assert run_cli("calibrate", "--profile", "tdx-fast", "--out", str(f)).code == 0
    assert f.read_text() == r.out


def test_calibrate_out_dash_needs_one_profile_and_no_json() -> None:
    _one_error(run_cli("calibrate", "--out", "-"), "with several profiles")
    _one_error(run_cli("calibrate", "--profile", "tdx", "--out", "-", "--json"), "both write to standard output")


def test_plot_dash_writes_png_bytes_to_stdout() -> None:
    # A real pipe: the image bytes are all that reaches standard output.
    r = subprocess.run([sys.executable, "-m", "lazyaccept", "boot", "--memory", "1G", "--plot", "-"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(PNG_MAGIC) and r.stdout.rstrip(b"\0").endswith(b"IEND\xaeB`\x82")
    assert b"Boot to shell" in r.stderr  # the report went to stderr


def test_plot_dash_with_json_is_refused() -> None:
    _one_error(run_cli("boot", "--memory", "1G", "--plot", "-", "--json"), "both write to standard output")
    _one_error(run_cli("compare", "--memory", "1G", "--plot", "-", "--json"), "both write to standard output")


# -- plot formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix,magic", [(".png", PNG_MAGIC), (".svg", b"<?xml"), (".pdf", b"%PDF-"),
                                          (".PNG", PNG_MAGIC)])
def test_plot_format_follows_the_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    path = tmp_path / f"boot{suffix}"
    r = run_cli("boot", "--memory", "1G", "--plot", str(path))
    assert r.code == 0, r.err
    assert path.read_bytes().startswith(magic)
    cmp = tmp_path / f"compare{suffix}"
    r = run_cli("compare", "--memory", "1G", "--memory", "2G", "--plot", str(cmp))
    assert r.code == 0, r.err
    assert cmp.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["boot.jpg", "boot", "boot.png.txt", "boot.tiff"])
def test_other_suffixes_are_one_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    for cmd in (["boot", "--memory", "1G"], ["compare", "--memory", "1G"]):
        _one_error(run_cli(*cmd, "--plot", str(path)), "a plot is written as PNG, SVG or PDF by its suffix")
    assert not path.exists()


# -- dumps ------------------------------------------------------------------------------------


def _dump(folder: Path, *extra: str, memory: str = "8G"):
    return run_cli("boot", "--memory", memory, "--dump", str(folder), *extra)


def test_dump_into_a_new_folder_and_nothing_else_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    r = _dump(out)
    assert r.code == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == sorted(DUMP_FILES)  # TDX: all eight
    assert [p.name for p in tmp_path.iterdir()] == ["dump"]  # no temporary folder left


def test_dump_into_an_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    out.mkdir()
    assert _dump(out).code == 0
    assert len(list(out.iterdir())) == len(DUMP_FILES)


def test_non_empty_folder_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    assert _dump(out, memory="8G").code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _one_error(_dump(out, memory="6G"), "folder is not empty")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_force_replaces_an_earlier_dump_whole(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    assert run_cli("boot", "--memory", "8G", "--dump", str(out)).code == 0
    # An SNP dump has no TD HOB: after replacing the TDX dump, no stale td-hob.bin may remain.
    r = run_cli("boot", "--memory", "6G", "--platform", "snp", "--dump", str(out), "--force")
    assert r.code == 0, r.err
    names = sorted(p.name for p in out.iterdir())
    assert "td-hob.bin" not in names
    assert names == sorted(n for n in DUMP_FILES if n != "td-hob.bin")
    assert "MemTotal" in (out / "meminfo").read_text()
    assert "AMD SEV" in (out / "dmesg.txt").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["dump"]  # the old dump is gone, no temporary


def test_force_does_not_replace_a_folder_that_is_not_a_dump(tmp_path: Path) -> None:
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    _one_error(_dump(out, "--force"), "not a dump's (thesis.tex)")
    assert (out / "thesis.tex").read_text() == "precious"


def test_dump_to_a_symlink_or_stdout_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    _one_error(_dump(link), "is a symbolic link")
    _one_error(run_cli("boot", "--memory", "1G", "--dump", "-"), "name a folder")
    assert list(real.iterdir()) == []


def _fail_fifth_write(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the write of the 5th file fail as on a full disk, after writing part of it."""
    written: list[str] = []
    real = artefacts._write_new_file

    def write(path: Path, data: bytes) -> None:
        written.append(path.name)
        if len(written) == 5:
            with open(path, "xb") as fh:
                fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(artefacts, "_write_new_file", write)
    return written


def test_full_disk_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = _fail_fifth_write(monkeypatch)
    out = tmp_path / "dump"
    r = _dump(out)
    assert len(written) == 5
    assert r.code == 2 and "No space left on device" in r.err and len(r.err_lines) == 1
    assert r.out_bytes == b""
    assert list(tmp_path.iterdir()) == []  # neither the dump nor its temporary folder


def test_full_disk_keeps_the_earlier_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "dump"
    assert _dump(out, memory="8G").code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fail_fifth_write(monkeypatch)
    r = _dump(out, "--force", memory="6G")
    assert r.code == 2 and "No space left on device" in r.err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["dump"]


def test_failure_at_the_rename_restores_the_earlier_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "dump"
    assert _dump(out, memory="8G").code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace = os.replace
    calls: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(Path(src).name)
        if Path(src).name.startswith(".dump.new-"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(artefacts.os, "replace", replace)
    r = _dump(out, "--force", memory="6G")
    assert r.code == 2 and "Input/output error" in r.err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["dump"]
