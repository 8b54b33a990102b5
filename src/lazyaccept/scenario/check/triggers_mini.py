"""The smallest scenarios that trigger the historic bugs of the page allocator, memblock and
``accept_memory()``'s guard: a few units of RAM (:mod:`.mini`), run with the rules given.

Each function runs the scenario with ``rules`` and returns what the detectors saw; run with the
correct kernel's rules it must see nothing.
"""

from __future__ import annotations

from ...base.choices import Tee
from ...base.units import PAGE_SIZE, MiB, format_size
from ...guest.bulk_alloc import VMALLOC_BULK_BATCH, alloc_pages_bulk
from ...guest.memblock import Memblock
from ...guest.memblock_regions import INIT_MEMBLOCK_REGIONS, RegionArrays
from ...guest.reclaim import kswapd
from ...guest.rules import KernelRules
from . import detectors
from .findings import Finding, Observation
from .mini import BASE, UNIT, mini_guest


def no_guard_unit(rules: KernelRules) -> Observation:
    """Four unaccepted units.  memblock allocates 2 MiB top down below BASE + 4 MiB: it gets unit 1,
    ending on a unit boundary, and ``memblock_alloc_range_nid()`` accepts it.  The guest uses it,
    and a word-at-a-time read (``load_unaligned_zeropad()``) at its end reads the first word of
    unit 2.  The guard unit ("efi/unaccepted: Avoid load_unaligned_zeropad() stepping into
    unaccepted memory") makes ``accept_memory()`` of a range ending on a unit boundary accept the
    next unit too.  (Its other half, in ``range_contains_unaccepted_memory()``, keeps a chunk
    followed by an unaccepted unit off the free lists; the model's allocator, which hands out the
    lowest pages first and tops accepted memory up in address order before handing any out, cannot
    reach such a chunk's last page first, so it is this half that shows the bug.)"""
    g = mini_guest(rules, units=4)
    mb = Memblock(g.ram)

    def body() -> list[Finding]:
        start, end = mb.alloc(UNIT, limit=BASE + 2 * UNIT)
        g.mem.accept_memory(start, end - start, actor="memblock")
        g.platform.touch(start, end, actor="memblock", vcpu=0)
        g.platform.touch(end, end + 8, actor="load_unaligned_zeropad", vcpu=0)
        return []

    found = detectors.observe(body, g.unaccepted_bytes)
    return Observation(found, "memblock_alloc(2 MiB) ending on a unit boundary, used, then a word read past its end")


def unaligned_request(rules: KernelRules) -> Observation:
    """Two unaccepted units.  memblock hands out a 0x83-byte object in the last page of unit 0 (as
    in the 2026 report's ``accept_memory(start=...f40, size=0x83)``); ``accept_memory()`` of its
    exact bytes ends inside the unit, so without widening to pages first there is no guard unit.
    Other objects share that page, and a word-at-a-time read at its end crosses into unit 1."""
    g = mini_guest(rules, units=2)
    start = BASE + UNIT - 0x100 + 0x40
    size = 0x83

    def body() -> list[Finding]:
        g.mem.accept_memory(start, size, actor="memblock")
        page = start - start % PAGE_SIZE
        g.platform.touch(page, page + PAGE_SIZE, actor="memblock object", vcpu=0)
        g.platform.touch(page + PAGE_SIZE, page + PAGE_SIZE + 8, actor="load_unaligned_zeropad", vcpu=0)
        return []

    found = detectors.observe(body, g.unaccepted_bytes)
    return Observation(found, f"accept_memory({start:#x}, {size:#x}) then a read of the word after its page")


def zero_wmark_no_accept(rules: KernelRules) -> Observation:
    """One unaccepted chunk and no accepted free memory; the first page allocation comes before
    ``init_per_zone_wmark_min()`` has set the watermarks, which are all 0."""
    g = mini_guest(rules, units=2)

    def body() -> list[Finding]:
        g.allocator.alloc(1, actor="page_alloc:early")
        return []

    found = detectors.observe(body, g.unaccepted_bytes)
    return Observation(found, "one page allocated before the watermarks were set")


def unaccepted_counted_unusable(rules: KernelRules) -> Observation:
    """A 64 MiB zone, 16 MiB accepted by firmware (12 MiB of it free: chunk 3 is parked for its
    guard unit).  After the watermarks are set, init's allocations bring accepted free memory down
    to just above the low watermark, and kswapd is woken (by any allocation that enters the slow
    path).  The only reclaimable memory is init's page cache (assumed 16 pages)."""
    g = mini_guest(rules, units=32, accepted_units=8)
    a = g.allocator
    a.setup_watermarks()
    zone = a.zones[-1]

    def body() -> list[Finding]:
        a.alloc(zone.accepted_free_pages - zone.wmark_low - 1, actor="init")
        run = kswapd(a, {zone.name: 16})
        found = detectors.reclaim_loop(run, g.unaccepted_bytes())
        return [found] if found else []

    found = detectors.observe(body, g.unaccepted_bytes)
    return Observation(found, f"kswapd woken with the zone at its low watermark ({zone.wmark_low} pages), "
                              f"{format_size(g.unaccepted_bytes())} unaccepted")


def bulk_alloc_no_accept(rules: KernelRules) -> Observation:
    """A 64 MiB zone, 16 MiB accepted.  After the watermarks are set, vmalloc fills a 16 MiB area
    with bulk requests of at most 100 pages (``vm_area_alloc_pages()``)."""
    g = mini_guest(rules, units=32, accepted_units=8)
    a = g.allocator
    a.setup_watermarks()
    want = 16 * MiB // PAGE_SIZE

    def body() -> list[Finding]:
        got = 0
        short: list[Finding] = []
        while got < want:
            n = min(VMALLOC_BULK_BATCH, want - got)
            pages = sum((e - s) // PAGE_SIZE for s, e in alloc_pages_bulk(a, n, actor="vmalloc"))
            found = detectors.allocation_short("alloc_pages_bulk()", n, pages, g.unaccepted_bytes())
            if found is not None and not short:
                short.append(found)
            got += pages
        return short

    found = detectors.observe(body, g.unaccepted_bytes)
    return Observation(found, f"vmalloc of 16 MiB in bulk requests of {VMALLOC_BULK_BATCH} pages")


def memblock_double_array(rules: KernelRules) -> Observation:
    """SEV-SNP, eight units, the first four validated by firmware.  Early boot reserves
    INIT_MEMBLOCK_REGIONS + 1 separate pages (a fragmented firmware map does this: every EFI
    boot-services region is reserved on its own), so memblock doubles its reserved-regions array
    into the highest free range it finds -- in unaccepted memory."""
    g = mini_guest(rules, units=8, accepted_units=4, tee=Tee.SNP)
    mb = Memblock(g.ram)
    arrays = RegionArrays(mb, g.mem, g.platform, rules)

    def body() -> list[Finding]:
        for i in range(INIT_MEMBLOCK_REGIONS + 1):
            page = BASE + 2 * i * PAGE_SIZE  # every other page: separate regions
            arrays.reserve(page, page + PAGE_SIZE)
        return []

    found = detectors.observe(body, g.unaccepted_bytes)
    where = f"; array doubled into {arrays.doubled[0][0]:#x}" if arrays.doubled else ""
    return Observation(found, f"{INIT_MEMBLOCK_REGIONS + 1} reservations{where}")
