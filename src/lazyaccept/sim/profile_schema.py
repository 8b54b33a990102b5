"""What a cost profile contains: its sections, keys, and the dimension of each number.

No timing constant lives here: the schema only says which keys exist and in which dimension
their units must be.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.choices import Tee


@dataclass(frozen=True)
class Spec:
    dim: str  # "time" | "bytes" | "1"
    per: str | None  # None, a count name, or "time"/"bytes"
    doc: str
    positive: bool = True  # False: zero allowed (never negative)
    optional: bool = False  # a profile may leave it out (priced as 0)


HOST = {
    "memory_bandwidth": Spec("bytes", "time", "zeroing bandwidth of the host memory, shared by all vCPUs"),
    "vcpu_bandwidth": Spec("bytes", "time", "what one vCPU can stream (zeroing) on its own"),
    "path_fault_4k": Spec(
        "time", "page", "serialised host-path time of one 4 KiB private-memory fault (fault handling, AUG, re-entry)"
    ),
    "path_fault_2m": Spec("time", "page", "serialised host-path time of one 2 MiB private-memory fault"),
    "path_idle_exit": Spec(
        "time", "exit", "serialised host-path time of one timer tick of an idle vCPU (HLT exit, wake-up, re-entry)"
    ),
    "page_remove": Spec(
        "time", "page", "serialised host-path time to remove one private page (TDX BLOCK+TRACK+REMOVE; SNP RMPUPDATE)"
    ),
    "kick_vcpu": Spec(
        "time", "exit", "serialised host-path time, per page removed, to force one vCPU out of guest mode and back"
    ),
}
ACCEPT: dict[Tee, dict[str, Spec]] = {
    Tee.TDX: {
        "tdcall_4k": Spec("time", "call", "one TDG.MEM.PAGE.ACCEPT TDCALL at 4 KiB (failed ones too)"),
        "tdcall_2m": Spec("time", "call", "one TDG.MEM.PAGE.ACCEPT TDCALL at 2 MiB, zeroing excluded"),
        "tdcall_1g": Spec(
            "time", "call", "one TDG.MEM.PAGE.ACCEPT TDCALL at 1 GiB (rejected by the module)"
        ),
        "td_exit": Spec("time", "exit", "TD exit + KVM EPT-violation handling + TD re-entry"),
        "host_fault_4k": Spec(
            "time", "page", "guest_memfd allocation + TDH.MEM.PAGE.AUG of 4 KiB, no zeroing"
        ),
        "host_fault_2m": Spec(
            "time", "page", "guest_memfd allocation + TDH.MEM.PAGE.AUG of 2 MiB, no zeroing"
        ),
        "accept_request": Spec("time", "request", "kernel bookkeeping of one accept_memory() request"),
    },
    Tee.SNP: {
        "psc_request": Spec("time", "request", "one VMGEXIT round trip (page-state change or other exit)"),
        "psc_entry": Spec("time", "entry", "host handling of one page-state-change entry (RMPUPDATE)"),
        "npf_exit": Spec(
            "time", "exit", "a nested page fault exit and re-entry, per page the host backs on the guest's PVALIDATE",
            optional=True,
        ),
        "pvalidate_4k": Spec("time", "call", "one PVALIDATE at 4 KiB (failed ones too)"),
        "pvalidate_2m": Spec("time", "call", "one PVALIDATE at 2 MiB (failed ones too)"),
        "host_fault_4k": Spec(
            "time", "page", "guest_memfd allocation + RMP assignment of 4 KiB, no zeroing"
        ),
        "host_fault_2m": Spec(
            "time", "page", "guest_memfd allocation + RMP assignment of 2 MiB, no zeroing"
        ),
        "accept_request": Spec("time", "request", "kernel bookkeeping of one accept_memory() request"),
    },
}
#: Boot-step costs; each key is a WorkEvent kind, except ``<kind>_bytes`` companions, which add
#: bytes moved through memory per unit of that kind.
BOOT = {
    "firmware_base": Spec("time", None, "firmware from reset to the OS loader, acceptance excluded"),
    "firmware_ap_init": Spec("time", "AP", "firmware bring-up of one application processor"),
    "kernel_decompress": Spec("time", None, "EFI stub + decompression of the kernel image"),
    "early_init": Spec("time", None, "start_kernel up to memory init, acceptance excluded"),
    "memmap_init": Spec("time", "page", "initialising one struct page in memmap_init"),
    "memmap_init_bytes": Spec("bytes", "page", "bytes written per struct page initialised (memory traffic)"),
    "struct_page_init": Spec("time", "page", "deferred struct page init and freeing, per page"),
    "catch_all_per_page": Spec(
        "time", "page",
        "memory-proportional boot cost the model does not break out, per 4 KiB page of RAM (a catch-all)",
        positive=False, optional=True,
    ),
    "smp_bringup": Spec("time", "AP", "bring-up of one AP, done serially by the BSP"),
    "initcalls": Spec("time", None, "driver and subsystem initcalls"),
    "userspace_to_shell": Spec("time", None, "init to a shell prompt, first-touch cost excluded"),
    "userspace_touch": Spec("bytes", "bytes", "bytes zeroed per byte of the shell's memory footprint"),
    "user_fault": Spec(
        "time", "page", "a workload's first touch of a page: the anonymous fault and page allocation, zeroing excluded"
    ),
}
SECTIONS = ("host", "accept", "boot")
PARAM_KEYS = {"value", "unit", "source", "bounds", "fit", "uncertainty", "note"}
SECTION_DOCS = {
    "host": "The host: its memory system and its serialised path (what only one vCPU's operation at a time can use).",
    "accept": "Per-operation costs of accepting memory (zeroing is priced by bandwidth, in [host]).",
    "boot": "Boot steps that do not accept memory; each key is a WorkEvent kind, priced per its unit.",
}


def schema(tee: Tee) -> dict[str, dict[str, Spec]]:
    """The sections and keys a profile of ``tee`` must have."""
    return {"host": HOST, "accept": ACCEPT[tee], "boot": BOOT}
