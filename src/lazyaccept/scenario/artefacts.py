"""The booted guest as its own text: /proc/meminfo, /proc/vmstat and a dmesg-style log, in the
real formats, plus the binary artefacts (EFI memory map, unaccepted table, TD HOB)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..base.choices import AcceptPolicy, BootPhase, Tee
from ..base.errors import ConfigError
from ..base.ranges import RangeSet
from ..base.units import PAGE_SIZE
from ..formats.e820 import E820_TYPE_RAM
from ..formats.efi_memmap import build_memory_map
from ..formats.kernel_text import (
    format_dmesg_line,
    format_e820_lines,
    format_efi_memmap_lines,
    format_meminfo,
    format_vmstat,
)
from ..formats.unaccepted import build_unaccepted_table
from .boot_record import BootRecord

KB_PER_PAGE = PAGE_SIZE // 1024
#: Per TEE: the line that says the guest detected it (if any), and the features the kernel prints
#: in "Memory Encryption Features active:" (arch/x86/mm/mem_encrypt.c, print_mem_encrypt_feature_info()).
TEE_LINES: dict[Tee, tuple[str | None, str]] = {
    Tee.TDX: ("tdx: Guest detected", "Intel TDX"),
    Tee.SNP: (None, "AMD SEV SEV-ES SEV-SNP"),
}


def meminfo_fields(rec: BootRecord) -> dict[str, int]:
    """``/proc/meminfo`` values (kB) of the booted guest, in the kernel's order."""
    a = rec.kernel.allocator
    total = a.managed_pages()
    free = a.free_pages()
    # totalreserve_pages (calculate_totalreserve_pages(), mm/page_alloc.c): per zone its high
    # watermark and its largest lowmem reserve, at most its managed pages; si_mem_available()
    # takes them off free memory.
    reserve = sum(min(z.managed_pages, z.wmark_high + z.lowmem_reserve) for z in a.zones)
    anon = rec.config.footprint.shell_footprint // PAGE_SIZE
    percpu = rec.config.vcpus * rec.config.footprint.percpu_unit // 1024
    fields = {
        "MemTotal": total * KB_PER_PAGE,
        "MemFree": free * KB_PER_PAGE,
        "MemAvailable": max(0, free - reserve) * KB_PER_PAGE,
        "Buffers": 0,
        "Cached": 0,
        "SwapCached": 0,
        "Active": anon * KB_PER_PAGE,
        "Inactive": 0,
        "Active(anon)": anon * KB_PER_PAGE,
        "Inactive(anon)": 0,
        "Active(file)": 0,
        "Inactive(file)": 0,
        "Unevictable": 0,
        "Mlocked": 0,
        "SwapTotal": 0,
        "SwapFree": 0,
        "Dirty": 0,
        "Writeback": 0,
        "AnonPages": anon * KB_PER_PAGE,
        "Mapped": 0,
        "Shmem": 0,
        "Percpu": percpu,
        "Unaccepted": a.nr_unaccepted() * KB_PER_PAGE,
        "HugePages_Total": 0,
        "HugePages_Free": 0,
        "HugePages_Rsvd": 0,
        "HugePages_Surp": 0,
        "Hugepagesize": 2048,
        "Hugetlb": 0,
    }
    return fields


def vmstat_fields(rec: BootRecord) -> dict[str, int]:
    a = rec.kernel.allocator
    anon = rec.config.footprint.shell_footprint // PAGE_SIZE
    return {
        "nr_free_pages": a.free_pages(),
        "nr_zone_inactive_anon": 0,
        "nr_zone_active_anon": anon,
        "nr_zone_inactive_file": 0,
        "nr_zone_active_file": 0,
        "nr_zone_unevictable": 0,
        "nr_zone_write_pending": 0,
        "nr_mlock": 0,
        "nr_bounce": 0,
        "nr_free_cma": 0,
        "nr_unaccepted": a.nr_unaccepted(),
        "nr_anon_pages": anon,
    }


def dmesg_lines(rec: BootRecord, phase_starts: dict[str, float] | None = None) -> list[str]:
    """A dmesg excerpt with the lines a user greps for, time-stamped by the phases when given.

    As in a real log the time stamps count from the kernel's start (the start of early init,
    where the kernel's clock starts), not from power-on, and each line is stamped when the
    kernel prints it: "Memory:" when memblock_free_all() is done, "Memory Encryption Features
    active" at the end of mem_encrypt_init(), "smp: Brought up" when the APs are online,
    "Run /init" when user space starts.
    """
    t = phase_starts or {}
    zero = t.get(BootPhase.EARLY_INIT, 0.0)
    order = [p.value for p in BootPhase]

    def start(phase: BootPhase) -> float:
        return max(0.0, t.get(phase, zero) - zero)

    def end(phase: BootPhase) -> float:
        later = [t[p] for p in order[order.index(phase) + 1 :] if p in t]
        return max(0.0, (later[0] if later else t.get(phase, zero)) - zero)

    cfg = rec.config
    lines: list[str] = []

    def at(ts: float, text: str) -> None:
        lines.append(format_dmesg_line(ts, text))

    boot = start(BootPhase.EARLY_INIT)
    detected, features = TEE_LINES[cfg.tee]
    if detected is not None:
        at(boot, detected)
    at(boot, f"Linux version {cfg.kernel_release} (lazyaccept model)")
    at(boot, f"Command line: console=ttyS0 efi=debug accept_memory={AcceptPolicy(cfg.policy).value}")
    at(boot, "BIOS-provided physical RAM map:")
    lines.extend(format_e820_lines(rec.kernel.e820, boot))
    at(boot, "efi: EFI v2.70 by EDK II")
    lines.extend(format_efi_memmap_lines(rec.kernel.stub.memory_map, boot))
    at(boot, "Zone ranges:")
    names = {z.name for z in rec.kernel.allocator.zones}
    for name, lo, hi in (("DMA", 0x1000, 16 << 20), ("DMA32", 16 << 20, 4 << 30)):
        zone = next((z for z in rec.kernel.allocator.zones if z.name == name), None)
        if zone is not None:
            at(boot, f"  {name:<8} [mem {max(lo, zone.start):#018x}-{min(hi, zone.end) - 1:#018x}]")
    if "Normal" in names:
        # The zone ranges are the kernel's PFN limits, one line per zone type over every node.
        normal = [z for z in rec.kernel.allocator.zones if z.name == "Normal"]
        at(boot, f"  Normal   [mem {normal[0].start:#018x}-{max(z.end for z in normal) - 1:#018x}]")
    else:
        at(boot, "  Normal   empty")
    at(boot, "Early memory node ranges")
    numa = rec.kernel.allocator.numa
    for e in rec.kernel.e820:
        if e.type == E820_TYPE_RAM:
            for node in range(numa.nodes):
                for a, b in numa.node_ram(node, RangeSet([(e.addr, e.end)])):
                    at(boot, f"  node {node:>3}: [mem {a:#018x}-{b - 1:#018x}]")
    at(boot, f"smpboot: Allowing {cfg.vcpus} CPUs, 0 hotplug CPUs")
    fp = rec.config.footprint
    at(boot, f"percpu: Embedded {fp.percpu_embedded_pages} pages/cpu u{fp.percpu_unit}")
    # mem_init_print_info() runs right after memblock_free_all(): with deferred struct page
    # init, only the memory freed so far counts as available.
    free_kb = rec.kernel.free_after_memblock * KB_PER_PAGE
    ram_kb = rec.kernel.ram.total() // 1024
    at(end(BootPhase.MEMBLOCK_FREE), f"Memory: {free_kb}K/{ram_kb}K available ({ram_kb - free_kb}K reserved)")
    at(end(BootPhase.MEM_ENCRYPT_INIT), f"Memory Encryption Features active: {features}")
    at(start(BootPhase.SMP_BRINGUP), "smp: Bringing up secondary CPUs ...")
    nodes = "1 node" if numa.nodes == 1 else f"{numa.nodes} nodes"
    at(end(BootPhase.SMP_BRINGUP), f"smp: Brought up {nodes}, {cfg.vcpus} CPU" + ("s" if cfg.vcpus != 1 else ""))
    if rec.kernel.deferred_start is not None:
        # One line per node's kthread; they run in parallel, each given the phase's time (the
        # slowest node's: the model keeps no per-node end).
        ms = round((end(BootPhase.DEFERRED_INIT) - start(BootPhase.DEFERRED_INIT)) * 1000)
        for lo, _ in rec.kernel.deferred_ranges:
            node = next(z.node for z in rec.kernel.allocator.zones if z.start <= lo < z.end)
            at(end(BootPhase.DEFERRED_INIT), f"node {node} deferred pages initialised in {ms}ms")
    image_kb = fp.kernel_image // 1024
    at(start(BootPhase.USERSPACE), f"Freeing unused kernel image (initmem) memory: {image_kb // 20}K")
    at(start(BootPhase.USERSPACE), "Run /init as init process")
    return lines


DUMP_FILES = ("efi-memmap.bin", "e820.txt", "meminfo", "vmstat", "dmesg.txt", "unaccepted-table.bin", "td-hob.bin",
              "host-trace.txt")


def _entries(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot read the folder: {exc.strerror or exc}") from None


def check_dump_folder(folder: str | Path, force: bool = False) -> None:
    """Refuse, before the boot is simulated, a dump target that cannot take a dump whole.

    A new path or an empty folder is fine.  A folder with files in it is refused (the files of an
    earlier dump would mix with the new ones) unless ``force``, and even then only when it holds
    nothing but a dump's files: ``--force`` replaces an earlier dump, never an arbitrary folder.
    """
    out = Path(folder)
    if str(folder) in ("", "-"):
        raise ConfigError(f"--dump {folder!r}: a dump is a folder of several files; name a folder")
    if out.is_symlink():
        raise ConfigError(f"{out}: is a symbolic link (to {os.readlink(out)}); name a folder or a new path")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not out.exists():
        if not parent.is_dir():
            raise ConfigError(f"{out}: folder {parent} does not exist")
        return
    names = _entries(out)
    if not names:
        return
    for name in names:
        if (out / name).is_dir() and not (out / name).is_symlink():
            raise ConfigError(f"{out / name}: is a directory, not a file")
    if not force:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ConfigError(f"{out}: folder is not empty ({shown}); use --force to replace an earlier dump")
    foreign = [n for n in names if n not in DUMP_FILES or not (out / n).is_file() or (out / n).is_symlink()]
    if foreign:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise ConfigError(f"{out}: holds files that are not a dump's ({shown}); --force replaces only an earlier dump")


def dump_files(rec: BootRecord, phase_starts: dict[str, float] | None = None,
               extra: dict[str, str] | None = None) -> dict[str, bytes]:
    """The dump's files by name, as bytes; ``extra`` adds files made above this layer (the host
    trace of the simulated boot)."""
    files: dict[str, bytes | str] = {
        "efi-memmap.bin": build_memory_map(rec.kernel.stub.memory_map),
        "e820.txt": "\n".join(format_e820_lines(rec.kernel.e820)) + "\n",
        "meminfo": format_meminfo(meminfo_fields(rec)),
        "vmstat": format_vmstat(vmstat_fields(rec)),
        "dmesg.txt": "\n".join(dmesg_lines(rec, phase_starts)) + "\n",
    }
    if rec.kernel.table is not None:
        files["unaccepted-table.bin"] = build_unaccepted_table(rec.kernel.table)
    if rec.firmware.td_hob is not None:
        files["td-hob.bin"] = rec.firmware.td_hob
    for name, text in (extra or {}).items():
        if name not in DUMP_FILES:
            raise ValueError(f"{name}: not a file of a dump")
        files[name] = text
    return {name: data.encode() if isinstance(data, str) else data for name, data in files.items()}


def _write_new_file(path: Path, data: bytes) -> None:
    """Write one file of the dump in the (new, private) temporary folder."""
    with open(path, "xb") as fh:
        fh.write(data)


def write_dump(rec: BootRecord, folder: str | Path, phase_starts: dict[str, float] | None = None,
               force: bool = False, extra: dict[str, str] | None = None) -> list[Path]:
    """Write the boot's artefacts into ``folder``, all or nothing.

    The files are written into a new temporary folder beside ``folder`` and that folder is
    renamed into place, so a failure (a full disk) leaves no file behind and ``folder`` as it
    was.  With ``force`` an earlier dump is replaced: it is renamed aside, the new one renamed
    in, and the old one deleted.
    """
    check_dump_folder(folder, force)
    out = Path(folder)
    files = dump_files(rec, phase_starts, extra)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=parent))
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write: {exc.strerror or exc}") from None
    old: Path | None = None
    try:
        for name, data in files.items():
            _write_new_file(tmp / name, data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if out.exists() and _entries(out):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            os.replace(out, old)  # onto the empty folder just made: nothing else can take the name
        os.replace(tmp, out)  # a new name, or an empty folder, is replaced atomically
    except BaseException as exc:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the earlier dump back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ConfigError(f"{out}: cannot write the dump: {exc.strerror or exc}") from None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [out / name for name in files]
