"""Firmware builds recognised by their SHA-256, with where each came from.

A hash names one exact file, so the provenance below is a fact about that file, not a guess.
Debian's images: package ``ovmf`` 2022.11-6+deb12u2 (Debian 12 "bookworm"), built from
edk2-stable202211 with Debian's patches (``debian/rules`` builds OvmfPkgX64 twice: the 2 MiB
flavour without SMM, and the 4 MiB one with ``SMM_REQUIRE``, which drops TDX support).  The
symbolic links of that package (``OVMF_CODE.ms.fd``, ``OVMF_CODE_4M.ms.fd``,
``OVMF_CODE_4M.snakeoil.fd``) point at the secure-boot builds and share their hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KnownBuild", "KNOWN_BUILDS", "known_build"]


@dataclass(frozen=True)
class KnownBuild:
    """Where one firmware file comes from."""

    #: The file's name in its package.
    file: str
    #: Package and version that ship it.
    source: str
    #: The upstream release it was built from.
    upstream: str


_DEBIAN_BOOKWORM = "Debian package ovmf 2022.11-6+deb12u2 (bookworm)"
_EDK2_202211 = "edk2-stable202211"

#: sha256 (hex) -> build.  Recorded with ``sha256sum /usr/share/OVMF/*.fd`` on an installed package.
KNOWN_BUILDS: dict[str, KnownBuild] = {
    "d9b568def24088c92f34b5479e0ed7e44d0a4d4cea8a0f5716719180bba48106": KnownBuild(
        "/usr/share/OVMF/OVMF_CODE.fd", _DEBIAN_BOOKWORM, _EDK2_202211
    ),
    "6ee6a5db7a1443d17594f1e00e3cf2a2250bc1c95c8f9101bc49c9977ce11a68": KnownBuild(
        "/usr/share/OVMF/OVMF_CODE.secboot.fd", _DEBIAN_BOOKWORM, _EDK2_202211
    ),
    "b157d97b1f69729514feb7f201d2cbe4957f23ab77920e361fe9f822ba49ca4c": KnownBuild(
        "/usr/share/OVMF/OVMF_CODE_4M.fd", _DEBIAN_BOOKWORM, _EDK2_202211
    ),
    "d50189a486d22af418198226a3a5bcb6ddac775590f6a808bd629474ee034d62": KnownBuild(
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", _DEBIAN_BOOKWORM, _EDK2_202211
    ),
}


def known_build(sha256_hex: str) -> KnownBuild | None:
    """The build whose file has this SHA-256, if recorded."""
    return KNOWN_BUILDS.get(sha256_hex.lower())
