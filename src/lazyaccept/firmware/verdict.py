"""How an OVMF image accepts memory, per platform, and how we know (``lazyaccept inspect``).

The evidence is what the image itself holds, read from its bytes:

* the reset vector's GUIDed table says which launches the image supports: a TDX metadata
  entry (TDVF descriptor) for TDX, an SEV metadata entry for SEV-SNP (QEMU places the SNP
  secrets and CPUID pages where it says; edk2 ``OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm``);
* the firmware volumes (opened with :mod:`..formats.fv`, LZMA sections included) list the
  modules, by their user-interface name and file GUID;
* a module's code holds the 16 bytes of every GUID it uses (EDK2's build writes each one the
  module's INF lists into the module's ``AutoGen.c``), so a protocol GUID found in a module's
  image says the module installs or uses that protocol.

What those modules do, read in tianocore/edk2:

* ``EDKII_MEMORY_ACCEPT_PROTOCOL`` (``gEdkiiMemoryAcceptProtocolGuid``, MdePkg.dec) is how the
  DXE core accepts memory it hands out; a platform driver installs it: ``OvmfPkg/TdxDxe/TdxDxe.c``
  for TDX, ``OvmfPkg/AmdSevDxe/AmdSevDxe.c`` for SEV-SNP (commit 59aa48bb7d, edk2-stable202302).
  Without it the firmware must accept everything before DXE.
* TDX: since commit d1e41c620f ("Introduce lazy accept in PlatformInitLib and PlatformPei",
  edk2-stable202211), ``OvmfPkg/Library/PlatformInitLib/IntelTdx.c`` accepts the unaccepted
  RAM below 4 GiB (``MaxAcceptedMemoryAddress = BASE_4GB``) and leaves the rest to the OS as
  ``EfiUnacceptedMemoryType``; TdxDxe installs the accept protocol in the same release.
* SEV-SNP: ``AmdSevDxe`` also installs ``OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL``
  (``gOvmfSevMemoryAcceptanceProtocolGuid``, OvmfPkg.dec, Bugzilla 3987; commits a00e2e5513 and
  466d8f65e3, edk2-stable202302) and registers a BeforeExitBootServices event that accepts all
  memory unless the OS loader called its ``AllowUnacceptedMemory()``: RAM above 4 GiB stays
  unaccepted only for an OS that opts in (``PeiSnpSystemRamValidate.c`` validates below 4 GiB).
  Before that, OVMF validated all of RAM for SNP guests.

Not readable from the image: fixed-at-build PCDs (``PcdTdxAcceptPageSize``) and the 4 GiB
limit are compiled into code, and the pre-upstream TDVF's ``PcdTdxAcceptPartialMemorySize``
left no mark we can find; where the evidence is missing, the verdict says ``unknown`` and
that a kernel log of one boot tells (its EFI memory map's ``Unaccepted`` lines).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from ..base.choices import FirmwareAccept, Tee
from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..formats import fv, tdvf
from .known_builds import KnownBuild, known_build
from .snp_digest import SEV_ES_RESET_BLOCK_GUID, SEV_METADATA_OFFSET_GUID

__all__ = [
    "Acceptance",
    "ModuleInfo",
    "PlatformVerdict",
    "FirmwareVerdict",
    "WATCHED_PROTOCOLS",
    "SEV_METADATA_OFFSET_GUID",
    "SEV_ES_RESET_BLOCK_GUID",
    "analyse_firmware",
    "firmware_accept_of",
    "WHAT_WOULD_TELL",
]

EDKII_MEMORY_ACCEPT = uuid.UUID("38c74800-5590-4db4-a0f3-675d9b8e8026")
OVMF_SEV_MEMORY_ACCEPTANCE = uuid.UUID("c5a010fe-38a7-4531-8a4a-0500d2fd1649")

#: GUIDs looked for in every module's code, and their edk2 names.
WATCHED_PROTOCOLS: dict[uuid.UUID, str] = {
    EDKII_MEMORY_ACCEPT: "EDKII_MEMORY_ACCEPT_PROTOCOL",
    OVMF_SEV_MEMORY_ACCEPTANCE: "OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL",
}
#: The platform drivers (their ``BASE_NAME`` and ``FILE_GUID`` in edk2 OvmfPkg).
TDX_DXE = ("TdxDxe", uuid.UUID("e750224e-7bce-40af-b5bb-47e3611eb5c2"))
AMD_SEV_DXE = ("AmdSevDxe", uuid.UUID("2ec9da37-ee35-4de9-86c5-6d9a81dc38a7"))

WHAT_WOULD_TELL = (
    "the kernel log of one boot with this image tells: `lazyaccept inspect LOG` reads its EFI memory "
    "map (efi=debug) and `lazyaccept boot --like LOG` takes the firmware's acceptance from it"
)


class Acceptance(StrEnum):
    """What the firmware accepts before the OS runs."""

    #: RAM below 4 GiB; the rest reaches the OS as EfiUnacceptedMemoryType.
    LAZY_BELOW_4G = "lazy-below-4g"
    #: SEV-SNP: as lazy-below-4g if the OS loader opts in, else everything at ExitBootServices.
    ALL_UNLESS_OS_OPTS_IN = "all-unless-os-opts-in"
    #: Everything.
    ALL = "all"
    #: The image cannot launch on this platform.
    NOT_SUPPORTED = "not-supported"
    #: The image does not say.
    UNKNOWN = "unknown"


#: The model's firmware accept for each verdict (None: nothing to model).
_MODEL_ACCEPT = {
    Acceptance.LAZY_BELOW_4G: "below-4g",
    Acceptance.ALL_UNLESS_OS_OPTS_IN: "below-4g",  # the OS's opt-in is the model's snp_os_opt_in
    Acceptance.ALL: "all",
}


@dataclass(frozen=True)
class ModuleInfo:
    """One FFS file of the image."""

    name: str | None
    guid: uuid.UUID
    type: str
    #: Watched protocol GUIDs found in the module's code, by edk2 name.
    protocols: tuple[str, ...] = ()


@dataclass
class PlatformVerdict:
    """The acceptance of one platform, with the evidence."""

    platform: Tee
    acceptance: Acceptance
    evidence: list[str] = field(default_factory=list)
    #: Set when ``acceptance`` is UNKNOWN: what would tell.
    what_would_tell: str | None = None

    @property
    def firmware_accept(self) -> FirmwareAccept | None:
        """The model's ``--firmware-accept`` value this verdict stands for."""
        value = _MODEL_ACCEPT.get(self.acceptance)
        return FirmwareAccept.parse(value) if value else None


@dataclass
class FirmwareVerdict:
    """Everything :func:`analyse_firmware` found."""

    sha256: str
    known: KnownBuild | None
    volumes: int
    modules: list[ModuleInfo]
    #: Encapsulations the parser could not open ("<module>: <what>").
    unopened: list[str]
    platforms: list[PlatformVerdict]

    def for_platform(self, tee: Tee) -> PlatformVerdict:
        return next(p for p in self.platforms if p.platform is tee)


def _modules(image: bytes) -> tuple[int, list[ModuleInfo], list[str]]:
    volumes = fv.find_volumes(image)
    modules, unopened = [], []
    for _vol, f in fv.walk_files(volumes):
        if f.type == fv.FileType.FFS_PAD:
            continue
        code = f.image
        found = tuple(name for guid, name in WATCHED_PROTOCOLS.items() if code and guid.bytes_le in code)
        modules.append(ModuleInfo(f.ui_name, f.name, f.type_name, found))
        unopened += [f"{f.ui_name or f.name}: {u}" for u in f.unopened]
    return len(volumes), modules, unopened


def _find(modules: list[ModuleInfo], which: tuple[str, uuid.UUID]) -> ModuleInfo | None:
    return next((m for m in modules if m.guid == which[1] or m.name == which[0]), None)


def _unknown(tee: Tee, evidence: list[str], why: str) -> PlatformVerdict:
    return PlatformVerdict(tee, Acceptance.UNKNOWN, [*evidence, why], WHAT_WOULD_TELL)


def _tdx(table: set[uuid.UUID], modules: list[ModuleInfo], volumes: int, unopened: list[str]) -> PlatformVerdict:
    if tdvf.TDX_METADATA_OFFSET_GUID not in table:
        why = "no TDX metadata entry in the reset vector's GUIDed table: QEMU cannot launch it as a TD"
        return PlatformVerdict(Tee.TDX, Acceptance.NOT_SUPPORTED, [why])
    evidence = ["TDX metadata (TDVF descriptor) in the reset vector's GUIDed table"]
    if not volumes:
        return _unknown(Tee.TDX, evidence, "no firmware volume found: the modules cannot be read")
    dxe = _find(modules, TDX_DXE)
    if dxe is None:
        why = "no TdxDxe module" + (f" (sections not opened: {'; '.join(unopened)})" if unopened else "")
        return _unknown(Tee.TDX, evidence, why)
    if "EDKII_MEMORY_ACCEPT_PROTOCOL" in dxe.protocols:
        evidence.append(f"module TdxDxe ({dxe.guid}) holds EDKII_MEMORY_ACCEPT_PROTOCOL ({EDKII_MEMORY_ACCEPT}): "
                        "it installs the protocol the DXE core accepts memory with (edk2 OvmfPkg/TdxDxe/TdxDxe.c)")
        evidence.append("with it, PlatformInitLib accepts the RAM below 4 GiB and leaves the rest unaccepted "
                        "(edk2 OvmfPkg/Library/PlatformInitLib/IntelTdx.c, MaxAcceptedMemoryAddress = BASE_4GB, "
                        "since edk2-stable202211)")
        return PlatformVerdict(Tee.TDX, Acceptance.LAZY_BELOW_4G, evidence)
    evidence.append(f"module TdxDxe ({dxe.guid}) without EDKII_MEMORY_ACCEPT_PROTOCOL: the DXE core cannot "
                    "accept memory, so the firmware accepts all of it before DXE")
    return PlatformVerdict(Tee.TDX, Acceptance.ALL, evidence)


def _snp(table: set[uuid.UUID], modules: list[ModuleInfo], volumes: int, unopened: list[str]) -> PlatformVerdict:
    if SEV_METADATA_OFFSET_GUID not in table:
        has_es = SEV_ES_RESET_BLOCK_GUID in table
        return PlatformVerdict(Tee.SNP, Acceptance.NOT_SUPPORTED, [
            "no SEV metadata entry in the reset vector's GUIDed table: QEMU has nowhere to put the SNP secrets "
            "and CPUID pages" + ("; the SEV-ES reset block is there (SEV and SEV-ES only)" if has_es else "")])
    evidence = ["SEV metadata (SNP secrets, CPUID and pre-validated ranges) in the reset vector's GUIDed table"]
    if not volumes:
        return _unknown(Tee.SNP, evidence, "no firmware volume found: the modules cannot be read")
    dxe = _find(modules, AMD_SEV_DXE)
    if dxe is None:
        why = "no AmdSevDxe module" + (f" (sections not opened: {'; '.join(unopened)})" if unopened else "")
        return _unknown(Tee.SNP, evidence, why)
    if "OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL" in dxe.protocols:
        evidence.append(f"module AmdSevDxe ({dxe.guid}) holds OVMF_SEV_MEMORY_ACCEPTANCE_PROTOCOL "
                        f"({OVMF_SEV_MEMORY_ACCEPTANCE}): at ExitBootServices it accepts all memory unless the OS "
                        "loader called AllowUnacceptedMemory() (edk2 OvmfPkg/AmdSevDxe/AmdSevDxe.c, Bugzilla 3987)")
        evidence.append("below 4 GiB OVMF validates RAM in PEI (edk2 OvmfPkg/Library/BaseMemEncryptSevLib/X64/"
                        "PeiSnpSystemRamValidate.c)")
        return PlatformVerdict(Tee.SNP, Acceptance.ALL_UNLESS_OS_OPTS_IN, evidence)
    if "EDKII_MEMORY_ACCEPT_PROTOCOL" in dxe.protocols:
        evidence.append(f"module AmdSevDxe ({dxe.guid}) holds EDKII_MEMORY_ACCEPT_PROTOCOL but not the "
                        "OS opt-in protocol: RAM above 4 GiB reaches the OS unaccepted (edk2 commit 59aa48bb7d)")
        return PlatformVerdict(Tee.SNP, Acceptance.LAZY_BELOW_4G, evidence)
    evidence.append(f"module AmdSevDxe ({dxe.guid}) without EDKII_MEMORY_ACCEPT_PROTOCOL: OVMF validates all "
                    "RAM before DXE (edk2 before edk2-stable202302)")
    return PlatformVerdict(Tee.SNP, Acceptance.ALL, evidence)


def analyse_firmware(image: bytes) -> FirmwareVerdict:
    """The verdict on an OVMF image (raises :class:`FormatError` if it is not one)."""
    image = bytes(image)
    table = {e.guid for e in tdvf.parse_ovmf_table(image)}
    try:
        volumes, modules, unopened = _modules(image)
    except FormatError as exc:
        raise FormatError(f"firmware volume: {exc}") from None
    digest = hashlib.sha256(image).hexdigest()
    platforms = [_tdx(table, modules, volumes, unopened), _snp(table, modules, volumes, unopened)]
    return FirmwareVerdict(digest, known_build(digest), volumes, modules, unopened, platforms)


@lru_cache(maxsize=8)
def firmware_accept_of(path: str, tee: Tee) -> FirmwareAccept:
    """What the image at ``path`` accepts on ``tee``, as the model's firmware accept (``boot
    --firmware IMAGE`` without ``--firmware-accept``); ConfigError when the image does not say."""
    try:
        verdict = analyse_firmware(read_input(path, what="firmware images")).for_platform(tee)
    except FormatError as exc:
        msg = str(exc)
        raise FormatError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    accept = verdict.firmware_accept
    if accept is None:
        unsupported = verdict.acceptance is Acceptance.NOT_SUPPORTED
        what = "cannot launch on" if unsupported else "does not say how it accepts on"
        raise ConfigError(f"{path} {what} {tee.value}: give --firmware-accept"
                          + (f" ({verdict.what_would_tell})" if verdict.what_would_tell else ""))
    return accept
