"""The ``fluxqueue.io/dependency`` annotation, parsed (pure).

Syntax and meaning are sbatch(1)'s ``--dependency``:

* ``after:a[+minutes][:b[+minutes]...]``: after each target has started (or been cancelled), plus the delay;
* ``afterany:a[:b...]``: after each has ended, whatever its outcome;
* ``afterok:a[:b...]``: after each has succeeded;
* ``afternotok:a[:b...]``: after each has ended without succeeding (failed or cancelled);
* ``singleton``: one workload of this name running at a time in the namespace;
* conditions joined by ``,`` must all hold, by ``?`` any one is enough ("Only one separator may be used").

Targets are workload names in the unit's own namespace (a Job's, a bare pod's, a pod group's or another
kind's name). A ``?`` list is any one of its targets, each condition of several targets counting as one term
per target (sbatch: ``afterok:20:21?afterany:23`` is "afterok:20 OR afterok:21 OR afterany:23").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fluxqueue.kube import names

AFTER = "after"
AFTERANY = "afterany"
AFTEROK = "afterok"
AFTERNOTOK = "afternotok"
SINGLETON = "singleton"
CONDITIONS = (AFTER, AFTERANY, AFTEROK, AFTERNOTOK, SINGLETON)
# Slurm's other types (aftercorr, afterburstbuffer, expand) have no meaning here.
_KNOWN_ELSEWHERE = ("aftercorr", "afterburstbuffer", "expand")

# A Kubernetes object name (DNS-1123 subdomain) or a pod group's name (a label value): letters, digits,
# '-', '_', '.', starting and ending with a letter or digit.
_TARGET = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$")
_DELAY = re.compile(r"^\d{1,6}$")


class DependencyError(ValueError):
    """A malformed annotation, phrased for the user (the webhook refuses the object with it)."""


@dataclass(frozen=True)
class Term:
    """One condition on one target (``singleton``: on the unit's own name)."""

    condition: str
    target: str
    delay_s: int = 0  # after:target+minutes

    def __str__(self) -> str:
        if self.condition == SINGLETON:
            return SINGLETON
        delay = f"+{self.delay_s // 60}" if self.delay_s else ""
        return f"{self.condition}:{self.target}{delay}"


@dataclass(frozen=True)
class Dependency:
    terms: tuple[Term, ...]
    any_of: bool  # joined by '?': any one term is enough; else (',') all must hold
    text: str  # the annotation as written

    @property
    def joined(self) -> str:
        return "any" if self.any_of else "all"

    @property
    def targets(self) -> set[str]:
        return {t.target for t in self.terms if t.condition != SINGLETON}

    @classmethod
    def from_rows(cls, text: str, rows: list[dict]) -> Dependency:
        """Back from rows of fluxqueue.dependencies (as ``rows`` wrote them)."""
        terms = tuple(Term(r["condition"], r["target"], int(r.get("delay_s") or 0)) for r in rows)
        return cls(terms, bool(rows) and rows[0].get("joined") == "any", text)

    def rows(self) -> list[dict]:
        """The terms as rows of fluxqueue.dependencies (without the unit id)."""
        return [
            {"condition": t.condition, "target": t.target, "delay_s": t.delay_s, "joined": self.joined}
            for t in self.terms
        ]


def _bad(part: str, why: str) -> DependencyError:
    return DependencyError(f"{names.ANNOTATION_DEPENDENCY}: {why} (in {part!r})")


def parse_dependency(text: str, *, own_name: str = "", singleton_name: str = "") -> Dependency:
    """The annotation's terms; DependencyError naming the annotation and the bad part otherwise.

    ``own_name``: the workload's name, refused as a target (a unit waiting for itself never runs).
    ``singleton_name``: the name a ``singleton`` term is about (the workload's own, or its generateName).
    """
    value = text.strip()
    if not value:
        raise DependencyError(f"{names.ANNOTATION_DEPENDENCY} is empty: give e.g. afterok:<workload name>")
    if "," in value and "?" in value:
        raise _bad(value, "use either ',' (all must hold) or '?' (any is enough), not both")
    any_of = "?" in value
    terms: list[Term] = []
    for part in value.split("?" if any_of else ","):
        part = part.strip()
        if not part:
            raise _bad(value, "an empty condition between separators")
        kind, _, rest = part.partition(":")
        kind = kind.strip().lower()
        if kind == SINGLETON:
            if rest:
                raise _bad(part, "singleton takes no targets")
            terms.append(Term(SINGLETON, singleton_name or own_name))
            continue
        if kind not in CONDITIONS:
            known = ", ".join(CONDITIONS)
            why = "not supported" if kind in _KNOWN_ELSEWHERE else "unknown condition"
            raise _bad(part, f"{why} {kind!r}; use one of {known}")
        if not rest.strip():
            raise _bad(part, f"{kind} needs at least one target: {kind}:<workload name>")
        for raw in rest.split(":"):
            target, plus, delay = raw.strip().partition("+")
            target = target.strip()
            if not target:
                raise _bad(part, "an empty target")
            if "/" in target:
                raise _bad(part, f"target {target!r}: targets are names in the workload's own namespace")
            if not _TARGET.match(target):
                raise _bad(part, f"target {target!r} is not a workload name")
            if own_name and target == own_name:
                raise _bad(part, f"{target!r} is this workload itself: it would wait for itself forever")
            delay_s = 0
            if plus:
                if kind != AFTER:
                    raise _bad(part, f"+minutes is only for after (sbatch), not {kind}")
                if not _DELAY.match(delay.strip()):
                    raise _bad(part, f"+{delay} is not a number of minutes")
                delay_s = int(delay.strip()) * 60
            terms.append(Term(kind, target, delay_s))
    return Dependency(tuple(terms), any_of, value)
