"""Where each part of a book sits: one axis for the plain and the High-Quality numberings.

The generator numbers plain and High-Quality parts separately, and how the two
relate differs from book to book (HQ Part 24 may start where plain Part 55
does). Nothing here assumes an offset. Each part is placed by evidence:

* **shared cards**: a card in HQ Part h at index i and in plain Part p at index
  j says that h + i/n_h and p + j/n_p are the same place in the book;
* **equal labels**: an HQ part whose starting chapter is the plain part's, when
  that label names one part only in each numbering;
* **section numbers** in the labels ("10.4.1" lies between "10.4" and "10.5");
* **part numbers** within one numbering, which only ever go forward.

The reference numbering is the plain one (the High-Quality one when a book has
no plain parts); its part numbers are the axis. The other numbering is mapped
onto it by a monotone, piecewise-linear fit through the anchors.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from .model import Card, Variant

__all__ = ["BookAxis", "align", "section_number"]

_SECTION = re.compile(r"^\s*(?:chapter\s+|section\s+|§\s*)?(\d+(?:\.\d+)*)(?:\.|\s|$)", re.IGNORECASE)
_STEP = 0.01  # the least distance between the starts of two parts of one numbering


def section_number(label: str | None) -> tuple[int, ...] | None:
    """'10.4.1 Generating Wavelets' -> (10, 4, 1); '8. Multi-level Feedback' -> (8,); no number -> None."""
    if not label:
        return None
    m = _SECTION.match(label)
    return tuple(int(n) for n in m.group(1).split(".")) if m else None


PartKey = tuple[Variant, int]


@dataclass(frozen=True, slots=True)
class BookAxis:
    """The start of each numbered part on the book's axis, each part's width, and the fit that
    places the other numbering's cards; built once by :func:`align`, asked once per card."""

    reference: Variant
    starts: Mapping[PartKey, float]
    widths: Mapping[PartKey, float]
    counts: Mapping[str, int]  # cards in each part file
    # the other numbering's anchors, fitted; None when it has none
    fit: "_MonotoneFit | None" = None
    # the other numbering's parts that evidence places (shared cards, an equal label); the rest
    # are placed by section numbers or their own numbers only, which orders them but is a guess
    anchored: frozenset[PartKey] = frozenset()

    def is_anchored(self, variant: Variant, part: int | None) -> bool:
        """Whether a part's start is known well enough to bound the chapters of other parts' cards."""
        return variant is self.reference or (variant, part) in self.anchored

    def start(self, variant: Variant, part: int | None) -> float:
        """Where a part starts; parts without a number sit at the very start."""
        if part is None:
            return 0.0
        return self.starts.get((variant, part), float(part))

    def place(self, card: Card) -> float:
        """Where a card sits in the book."""
        variant, part = card.meta.variant, card.meta.part
        if part is None:
            return 0.0
        start = self.start(variant, part)
        width = self.widths.get((variant, part), 1.0)
        share = card.index / max(self.counts.get(card.location.path, 1), 1)
        if variant is self.reference or self.fit is None:
            return start + width * share
        # within a part of the other numbering, the anchors say more than a straight line does
        return min(max(self.fit(part + share), start), start + width * (1 - _STEP))


def align(cards: Iterable[Card], same_note: Sequence[Sequence[Card]]) -> BookAxis:
    """Place the parts of one book. ``same_note`` lists the groups of cards that are one note."""
    cards = list(cards)
    counts: dict[str, int] = {}
    labels: dict[PartKey, str | None] = {}
    for card in cards:
        counts[card.location.path] = max(counts.get(card.location.path, 0), card.index + 1)
        if card.meta.part is not None:
            labels.setdefault((card.meta.variant, card.meta.part), _label_key(card.meta.starting_chapter))
    variants = {variant for variant, _ in labels}
    reference = Variant.PLAIN if Variant.PLAIN in variants else Variant.HIGH_QUALITY
    own = sorted(part for variant, part in labels if variant is reference)
    starts: dict[PartKey, float] = {(reference, p): float(p) for p in own}
    widths: dict[PartKey, float] = {(reference, p): 1.0 for p in own}
    others = sorted(part for variant, part in labels if variant is not reference)
    if others:
        other = Variant.HIGH_QUALITY if reference is Variant.PLAIN else Variant.PLAIN
        points = _card_anchors(same_note, reference, counts) + _label_anchors(labels, reference, other)
        fit = _MonotoneFit(points)
        placed = {h: fit(float(h)) for h in others} if points else {}
        bounds = _section_bounds(labels, reference, other)
        for h in others:
            low, high = bounds.get(h, (None, None))
            at = placed.get(h)
            if at is None:  # no anchor in the whole book: sections, else the part's own number
                at = (low + high) / 2 if low is not None and high is not None else (
                    low + 0.5 if low is not None else high - 0.5 if high is not None else float(h)
                )
            if low is not None and at < low:
                at = low
            if high is not None and at > high:
                at = high
            placed[h] = at
        previous = None
        for h in others:  # one numbering only goes forward
            if previous is not None and placed[h] <= placed[previous]:
                placed[h] = placed[previous] + _STEP
            previous = h
        for k, h in enumerate(others):
            starts[(other, h)] = placed[h]
            following = others[k + 1] if k + 1 < len(others) else None
            if following is not None:
                widths[(other, h)] = max((placed[following] - placed[h]) / (following - h), _STEP)
            else:
                widths[(other, h)] = max(fit.slope if points else 1.0, _STEP)
    return BookAxis(
        reference,
        MappingProxyType(starts),
        MappingProxyType(widths),
        MappingProxyType(counts),
        fit if others and points else None,
        frozenset((other, int(x)) for x, _ in points) if others else frozenset(),
    )


def _label_key(label: str | None) -> str | None:
    return " ".join(label.lower().split()) if label else None


def _card_anchors(same_note: Sequence[Sequence[Card]], reference: Variant, counts: Mapping[str, int]) -> list[tuple[float, float]]:
    """(other numbering's place, reference place) for each note seen in both numberings."""
    points = []
    for group in same_note:
        here: dict[bool, float] = {}
        for card in group:
            if card.meta.part is None:
                continue
            place = card.meta.part + card.index / max(counts[card.location.path], 1)
            is_reference = card.meta.variant is reference
            here[is_reference] = min(place, here.get(is_reference, place))
        if len(here) == 2:
            points.append((here[False], here[True]))
    return points


def _label_anchors(labels: Mapping[PartKey, str | None], reference: Variant, other: Variant) -> list[tuple[float, float]]:
    """An other-numbering part starts where the reference part with its label does, when each
    numbering has that label once (a 'Summary' that opens many parts says nothing)."""
    def unique(variant: Variant) -> dict[str, int]:
        seen: dict[str, list[int]] = {}
        for (v, part), label in labels.items():
            if v is variant and label:
                seen.setdefault(label, []).append(part)
        return {label: parts[0] for label, parts in seen.items() if len(parts) == 1}

    mine, theirs = unique(reference), unique(other)
    return [(float(theirs[label]), float(mine[label])) for label in sorted(set(mine) & set(theirs))]


def _section_bounds(
    labels: Mapping[PartKey, str | None], reference: Variant, other: Variant
) -> dict[int, tuple[float | None, float | None]]:
    """For each other-numbering part with a section number: the reference starts it must lie between."""
    numbered = sorted(
        (section_number(label), part) for (v, part), label in labels.items() if v is reference and section_number(label)
    )
    bounds = {}
    for (v, part), label in labels.items():
        section = section_number(label)
        if v is not other or section is None or not numbered:
            continue
        below = [p for s, p in numbered if s <= section]
        above = [p for s, p in numbered if s > section]
        bounds[part] = (float(max(below)) if below else None, float(min(above)) if above else None)
    return bounds


class _MonotoneFit:
    """A non-decreasing piecewise-linear map through anchor points (pool-adjacent-violators),
    extended past its ends with the overall slope."""

    def __init__(self, points: Sequence[tuple[float, float]]):
        grouped: dict[float, list[float]] = {}
        for x, y in points:
            grouped.setdefault(x, []).append(y)
        xs = sorted(grouped)
        blocks: list[list[float]] = []  # [sum of y, count, first x index, last x index]
        for i, x in enumerate(xs):
            blocks.append([sum(grouped[x]), len(grouped[x]), i, i])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
                last = blocks.pop()
                blocks[-1][0] += last[0]
                blocks[-1][1] += last[1]
                blocks[-1][3] = last[3]
        ys = [0.0] * len(xs)
        for total, count, first, last in blocks:
            for i in range(first, last + 1):
                ys[i] = total / count
        self.xs, self.ys = xs, ys
        span = xs[-1] - xs[0] if xs else 0.0
        slope = (ys[-1] - ys[0]) / span if span >= 0.5 else 1.0
        self.slope = min(max(slope, 0.25), 4.0)

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0] - self.slope * (xs[0] - x)
        if x >= xs[-1]:
            return ys[-1] + self.slope * (x - xs[-1])
        k = bisect_right(xs, x)
        x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
