"""Interleavings of ``accept_memory()`` and ``range_contains_unaccepted_memory()`` on several vCPUs
(drivers/firmware/efi/unaccepted_memory.c).

Each vCPU runs one *worker*: ``accept_memory(range)`` then uses the range, or
``range_contains_unaccepted_memory(range)``, then ``accept_memory(range)`` if it said yes, then
uses the range (what ``__free_pages_core()`` does with a block).  Using a range touches it and,
as ``load_unaligned_zeropad()`` may, the first word past its last page when that is RAM.  The
accept is :class:`~lazyaccept.guest.unaccepted.AcceptTask`, the kernel's state machine, so a
worker's steps are the points where another vCPU can run: take the lock, register on the
accepting list and find a run of set bits; the architecture accept (lock dropped, IRQs off);
retake the lock and clear the bits.  ``range_contains_unaccepted_memory()`` is one step under the
lock.

A worker that would spin (:meth:`~lazyaccept.guest.unaccepted.AcceptTask.blocked_on`) is not
runnable: spinning changes nothing, so schedules differ only in the order of steps that do.  At
every state the latency detector looks at each spinning worker and what it waits for; if every
live worker spins, that is a deadlock.  Every step may raise a safety violation (the platform
catches a second acceptance or a touch of unaccepted memory); at the end every requested unit
must be accepted and the accepting list empty.

Small cases are explored exhaustively: the reachable states form a DAG (every step makes
progress), discovered breadth first, so the first violation found comes with a shortest schedule
to it; the number of interleavings -- complete schedules -- is counted on the DAG.  Larger cases
(4-8 vCPUs) are sampled: seeded random schedules, each run from the start.
"""

from __future__ import annotations

import copy
import random
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from ...base.choices import AcceptRoutine
from ...base.errors import SafetyViolation
from ...base.units import PAGE_SIZE, align_up
from ...formats.unaccepted import new_table
from ...guest.rules import KernelRules
from ...guest.unaccepted import AcceptTask, TaskState, UnacceptedMemory, UnitRange, request_units
from ...platform.tdx import TdxPlatform
from . import detectors
from .findings import Finding
from .mini import BASE, UNIT


class OpKind(StrEnum):
    ACCEPT = "accept_memory"
    CHECK = "range_contains_unaccepted_memory"


@dataclass(frozen=True)
class Op:
    """One vCPU's call on ``[BASE + offset, BASE + offset + size)``."""

    kind: OpKind
    offset: int
    size: int
    #: When set, the call runs in an interrupt handler on that worker's CPU: it can start only
    #: when that CPU has IRQs enabled, and the CPU runs nothing else until the handler returns.
    irq_of: int | None = None

    def label(self) -> str:
        return f"{self.kind.value}(+{self.offset:#x}, {self.size:#x})"


@dataclass(frozen=True)
class Case:
    """A set of concurrent calls on a bitmap of ``units`` units (all unaccepted except
    ``accepted_units``); explored exhaustively or sampled."""

    name: str
    units: int
    ops: tuple[Op, ...]
    accepted_units: tuple[int, ...] = ()
    exhaustive: bool = True
    what: str = ""


class Phase(StrEnum):
    IRQ = "irq"  # an interrupt not yet taken
    CHECK = "check"
    ACCEPT = "accept"
    USE = "use"
    DONE = "done"


@dataclass
class Worker:
    vcpu: int
    op: Op
    phase: Phase
    units: UnitRange | None
    task: AcceptTask | None = None
    found: bool | None = None

    @property
    def name(self) -> str:
        if self.op.irq_of is not None:
            return f"irq{self.vcpu}@cpu{self.op.irq_of}"
        return f"cpu{self.vcpu}"

    @property
    def first_phase(self) -> Phase:
        return Phase.CHECK if self.op.kind is OpKind.CHECK else Phase.ACCEPT


class World:
    """The shared state of one case and its workers."""

    def __init__(self, case: Case, rules: KernelRules, use_accepting_list: bool) -> None:
        self.case = case
        self.platform = TdxPlatform()
        table = new_table(BASE, -(-case.units // 8))
        table.bits[: case.units] = True
        for u in case.accepted_units:
            self.platform.accept(BASE + u * UNIT, BASE + (u + 1) * UNIT, routine=AcceptRoutine.TDVF, actor="fw", vcpu=0)
            table.bits[u] = False
        self.mem = UnacceptedMemory(table, self.platform, rules, AcceptRoutine.LINUX, use_accepting_list)
        self.ram_end = BASE + case.units * UNIT
        self.workers = []
        for i, op in enumerate(case.ops):
            units = request_units(table, rules, BASE + op.offset, op.size)
            w = Worker(i, op, Phase.ACCEPT, units)
            w.phase = Phase.IRQ if op.irq_of is not None else w.first_phase
            if op.kind is OpKind.ACCEPT:
                w.task = self.mem.task(BASE + op.offset, op.size, w.name, i)
            self.workers.append(w)

    # -- scheduling ---------------------------------------------------------------------------
    def waits(self, w: Worker) -> tuple[str, UnitRange | None, str] | None:
        """What worker ``w`` would spin on now -- who holds it, the units that one works on, and
        how -- or None when ``w`` can step."""
        m = self.mem
        if w.phase is Phase.CHECK:
            # range_contains_unaccepted_memory() takes the lock, which only v6.5 holds across steps.
            if m.lock_holder is not None and m.lock_holder != w.vcpu:
                return self._holder(m.lock_holder, None, "the accept lock")
            return None
        if w.phase is not Phase.ACCEPT or w.task is None:
            return None
        wait = w.task.blocked_on()
        if wait is None:
            return None
        if wait.lock_holder is not None:
            return self._holder(wait.lock_holder, None, "the accept lock")
        return self._holder(None, wait.entry, "an accepting-list entry")

    def _holder(self, vcpu: int | None, entry: UnitRange | None, how: str) -> tuple[str, UnitRange | None, str]:
        for x in self.workers:
            if (vcpu is not None and x.vcpu == vcpu) or (entry is not None and x.task is not None
                                                          and x.task.units is entry):
                held = x.task.units if x.task is not None and x.task.units is not None else x.units
                return x.name, held, how
        return "an accept that never returns", entry, how

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.phase is not Phase.DONE]

    def irqs_on(self, w: Worker) -> bool:
        """Can an interrupt run on ``w``'s CPU now?  Not while ``w`` is inside accept_memory()
        with the lock taken (from registering to returning), unless the rules let IRQs on there."""
        t = w.task
        if w.phase is not Phase.ACCEPT or t is None or t.state in (TaskState.LOCK, TaskState.DONE):
            return True
        return not self.mem.rules.accept_irqs_off

    def interrupted(self, w: Worker) -> Worker | None:
        """The interrupt handler running on ``w``'s CPU, if one is."""
        return next((x for x in self.workers if x.op.irq_of == w.vcpu and x.phase not in (Phase.IRQ, Phase.DONE)),
                    None)

    def runnable(self) -> list[int]:
        out = []
        for w in self.live():
            if w.phase is Phase.IRQ:
                if w.op.irq_of is not None and self.irqs_on(self.workers[w.op.irq_of]):
                    out.append(w.vcpu)
                continue
            if self.interrupted(w) is None and self.waits(w) is None:
                out.append(w.vcpu)
        return out

    def state_findings(self) -> list[Finding]:
        """Latency findings for the workers spinning now, and a deadlock if no worker can run."""
        out: list[Finding] = []
        stuck: list[str] = []
        for w in self.live():
            handler = self.interrupted(w)
            if handler is not None:
                stuck.append(f"{w.name} is interrupted by {handler.name}")
            hit = self.waits(w)
            if hit is None:
                continue
            holder, held, how = hit
            stuck.append(f"{w.name} spins with IRQs off waiting for {holder} on {how}")
            if w.units is not None and held is not None:
                found = detectors.wait_on_disjoint_work(w.name, w.units, holder, held, how)
                if found is not None:
                    out.append(found)
        if self.live() and not self.runnable():
            out.append(detectors.deadlock(stuck))
        return out

    # -- one step -----------------------------------------------------------------------------
    def step(self, vcpu: int) -> str:
        """Advance worker ``vcpu`` by one step; returns what it did.  May raise SafetyViolation."""
        w = self.workers[vcpu]
        start, size = BASE + w.op.offset, w.op.size
        if w.phase is Phase.IRQ:
            w.phase = w.first_phase
            return f"interrupt on cpu{w.op.irq_of}: its handler calls {w.op.label()}"
        if w.phase is Phase.CHECK:
            w.found = self.mem.range_contains_unaccepted(start, size)
            if w.found:
                w.phase = Phase.ACCEPT
                w.task = self.mem.task(start, size, w.name, vcpu)
            else:
                w.phase = Phase.USE
            return f"{w.name} {w.op.label()} -> {w.found}"
        if w.phase is Phase.ACCEPT:
            assert w.task is not None
            return self._step_task(w)
        if w.phase is Phase.USE:
            self.platform.touch(start, start + size, actor=w.name, vcpu=vcpu)
            nxt = align_up(start + size, PAGE_SIZE)
            if nxt < self.ram_end:
                self.platform.touch(nxt, nxt + 8, actor=f"{w.name}:zeropad", vcpu=vcpu)
            w.phase = Phase.DONE
            return f"{w.name} uses +[{w.op.offset:#x}, {w.op.offset + size:#x})"
        raise AssertionError(f"{w.name} is done")

    def _step_task(self, w: Worker) -> str:
        t = w.task
        assert t is not None
        before, run = t.state, t.run
        t.step()
        if t.state is TaskState.DONE:
            w.phase = Phase.USE
        units = f"[{t.units.start}, {t.units.end})" if t.units is not None else "nothing"
        if before is TaskState.LOCK:
            if t.units is None:
                return f"{w.name} accept_memory: nothing in the bitmap, returns"
            if t.state is TaskState.DONE:
                return f"{w.name} accept_memory: lock, units {units} have no set bit, returns"
            rules = self.mem.rules
            keep = "keeps the lock" if rules.global_accept_lock else (
                "drops the lock, IRQs off" if rules.accept_irqs_off else "drops the lock and enables IRQs")
            listed = "registers " if self.mem.use_accepting_list else ""
            return f"{w.name} accept_memory: lock, {listed}units {units}, run {_units(t.run)}, {keep}"
        if before is TaskState.ARCH:
            return f"{w.name} accepts units {_units(run)}"
        if t.state is TaskState.DONE:
            return f"{w.name} relocks, clears {_units(run)}, returns"
        return f"{w.name} relocks, clears {_units(run)}, next run {_units(t.run)}"

    # -- end of a schedule ----------------------------------------------------------------------
    def final_findings(self) -> list[Finding]:
        """Every requested unit accepted, the bitmap and the accepting list as they should be."""
        m = self.mem
        out: list[Finding] = []
        if m.accepting or m.lock_holder is not None:
            out.append(Finding(detectors.Detector.SAFETY, "accepting-list", f"left behind: {m.accepting}"))
        for w in self.workers:
            if w.units is None:
                continue
            lo, hi = BASE + w.units.start * UNIT, BASE + w.units.end * UNIT
            if not self.platform.accepted().contains(lo, min(hi, self.ram_end)) or m.table.bits[
                w.units.start : w.units.end
            ].any():
                out.append(
                    Finding(detectors.Detector.SAFETY, "bitmap", f"{w.name}'s units [{w.units.start}, {w.units.end}) "
                            "are not all accepted, or still marked unaccepted", lo)
                )
        return out

    def key(self) -> tuple[object, ...]:
        m = self.mem
        workers = tuple(
            (w.phase.value, w.found, None if w.task is None else (w.task.state.value, w.task.cursor, w.task.run))
            for w in self.workers
        )
        accepting = tuple(sorted((e.start, e.end) for e in m.accepting))
        return (m.table.bits.tobytes(), accepting, m.lock_holder, workers, tuple(self.platform.accepted()))


def _units(run: tuple[int, int] | None) -> str:
    return "none" if run is None else f"[{run[0]}, {run[1]})"


@dataclass
class Exploration:
    """What exploring one case found: interleavings (complete schedules) explored, distinct states
    visited, and the first finding with a shortest schedule leading to it."""

    case: str
    exhaustive: bool
    schedules: int = 0
    states: int = 0
    finding: Finding | None = None
    findings: int = 0

    @property
    def clean(self) -> bool:
        return self.finding is None


@dataclass
class _Node:
    world: World
    depth: int
    parent: tuple[object, ...] | None
    via: str
    succ: list[tuple[object, ...] | None] = field(default_factory=list)


def explore_all(case: Case, rules: KernelRules, use_accepting_list: bool = True) -> Exploration:
    """Every interleaving of the case, breadth first over the state DAG."""
    init = World(case, rules, use_accepting_list)
    root = init.key()
    nodes: dict[tuple[object, ...], _Node] = {root: _Node(init, 0, None, "")}
    queue = deque([root])
    result = Exploration(case.name, True)
    best: tuple[int, Finding, list[str]] | None = None

    def path(key: tuple[object, ...] | None) -> list[str]:
        out: list[str] = []
        while key is not None:
            n = nodes[key]
            if n.via:
                out.append(n.via)
            key = n.parent
        return out[::-1]

    def record(depth: int, found: Finding, steps: list[str]) -> None:
        nonlocal best
        result.findings += 1
        if best is None or depth < best[0]:
            best = (depth, found, steps)

    while queue:
        key = queue.popleft()
        node = nodes[key]
        world = node.world
        for found in world.state_findings():
            record(node.depth, found, [*path(key), _waiting(found)])
        live = world.live()
        runnable = world.runnable()
        if not live:
            for found in world.final_findings():
                record(node.depth, found, path(key))
            continue
        if not runnable:
            continue  # deadlock, recorded above
        for vcpu in runnable:
            nxt = copy.deepcopy(world)
            try:
                via = nxt.step(vcpu)
            except SafetyViolation as exc:
                record(node.depth + 1, detectors.safety(exc), [*path(key), _failed(vcpu, exc)])
                node.succ.append(None)  # the schedule ends in the violation
                continue
            k2 = nxt.key()
            node.succ.append(k2)
            if k2 not in nodes:
                nodes[k2] = _Node(nxt, node.depth + 1, key, via)
                queue.append(k2)
        node.world = None  # type: ignore[assignment]  # free memory: only keys are needed now
    result.states = len(nodes)
    result.schedules = _count_paths(nodes, root)
    if best is not None:
        result.finding = _with_schedule(best[1], best[2])
    return result


def _count_paths(nodes: dict[tuple[object, ...], _Node], root: tuple[object, ...]) -> int:
    """Complete schedules from ``root``: a leaf (end, deadlock, violation) is one schedule.
    Post-order over the DAG without recursion."""
    memo: dict[tuple[object, ...], int] = {}
    stack = [(root, iter(nodes[root].succ))]
    while stack:
        key, it = stack[-1]
        for s in it:
            if s is not None and s not in memo:
                stack.append((s, iter(nodes[s].succ)))
                break
        else:
            stack.pop()
            succ = nodes[key].succ
            memo[key] = sum(1 if s is None else memo[s] for s in succ) if succ else 1
    return memo[root]


def explore_sample(case: Case, rules: KernelRules, schedules: int, seed: int, use_accepting_list: bool = True,
                   stop_at_first: bool = False) -> Exploration:
    """``schedules`` seeded random schedules of the case, each from the start."""
    rng = random.Random(seed)
    result = Exploration(case.name, False)
    best: tuple[int, Finding, list[str]] | None = None
    for _ in range(schedules):
        world = World(case, rules, use_accepting_list)
        steps: list[str] = []
        found: Finding | None = None
        while found is None:
            state = world.state_findings()
            if state:
                found = state[0]
                steps.append(_waiting(found))
                break
            runnable = world.runnable()
            if not runnable:
                final = world.final_findings()
                found = final[0] if final else None
                break
            vcpu = rng.choice(runnable)
            try:
                steps.append(world.step(vcpu))
            except SafetyViolation as exc:
                found = detectors.safety(exc)
                steps.append(_failed(vcpu, exc))
        result.schedules += 1
        if found is not None:
            result.findings += 1
            if best is None or len(steps) < best[0]:
                best = (len(steps), found, steps)
            if stop_at_first:
                break
    if best is not None:
        result.finding = _with_schedule(best[1], best[2])
    return result


def _failed(vcpu: int, exc: SafetyViolation) -> str:
    return f"cpu{vcpu} fails: {exc.rule} at {exc.address:#x}" + (f" ({exc.detail})" if exc.detail else "")


def _waiting(found: Finding) -> str:
    return f"{found.rule}: {found.detail}"


def _with_schedule(found: Finding, steps: list[str]) -> Finding:
    return Finding(found.detector, found.rule, found.detail, found.address, tuple(steps))


def explore(case: Case, rules: KernelRules, *, schedules: int, seed: int, use_accepting_list: bool = True,
            stop_at_first: bool = False) -> Exploration:
    """Exhaustively for small cases, else a seeded sample of ``schedules`` schedules."""
    if case.exhaustive:
        return explore_all(case, rules, use_accepting_list)
    return explore_sample(case, rules, schedules, seed, use_accepting_list, stop_at_first)
