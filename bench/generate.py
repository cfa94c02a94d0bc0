"""Generate a large flashcard library from the real corpus, deterministically.

Each synthetic book is a full run of parts made of real card blocks (verbatim
from ../shared/corpus, messy markers and all), with the overlap the corpus
shows between variants: High-Quality Part N holds about 60% of the cards of
plain Part N+1 (corpus: hq-05 in plain-06 15/15, hq-11 in plain-12 9/9,
build-llm hq-04 in plain-05 14/14, hq-23 in plain-25 18/24), a few of them
slightly reworded (near-duplicates). Questions are tagged per book so books
do not merge with each other.

usage: python bench/generate.py CORPUS_DIR OUT_DIR [--questions N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil

CARDS_PER_PART = 30
HQ_SHARE = (0, 1, 2)  # block index % 5 in these: the card also appears in the HQ part before


def card_blocks(corpus: str) -> list[str]:
    """Every real card block of the corpus, in a fixed order."""
    blocks = []
    for folder, _, names in sorted(os.walk(corpus)):
        for name in sorted(names):
            if not name.endswith(".md") or name == "README.md":
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                text = handle.read()
            body = text.split("\n---\n", 1)[1] if "\n---\n" in text else text
            for block in re.split(r"\n---[ \t]*\n", body):
                if "\n:p " in "\n" + block and "####" in block:
                    blocks.append(block.strip("\n"))
    return blocks


def tag_book(block: str, book: int) -> str:
    """The block's questions tagged with the book, so that the books do not merge with each other.

    The tag is plain text to markdown, as 91% of the real questions are (1,139 of 1,252 in the corpus and seeds):
    a '[B0]' tag made every generated question markdown, and rendered so, where real ones are not.
    """
    return re.sub(r"(^|\$\$):p ", lambda m: f"{m.group(1)}:p (B{book}) ", block, flags=re.M)


def generate(corpus: str, out: str, questions: int = 100_000) -> dict:
    blocks = card_blocks(corpus)
    per_card = sum(b.count(":p ") for b in blocks) / len(blocks)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    total = files = books = 0
    book = 0
    while total < questions:
        folder = os.path.join(out, f"book-{book:03d}")
        os.makedirs(folder)
        source = f"{book:03d}---Synthetic-Library-Book-{book}_processed"
        start = (book * 37) % len(blocks)
        parts = max(2, min(20, len(blocks) // CARDS_PER_PART - 1))
        plain_parts = []
        for n in range(1, parts + 1):
            chosen = [blocks[(start + (n - 1) * CARDS_PER_PART + i) % len(blocks)] for i in range(CARDS_PER_PART)]
            plain_parts.append([tag_book(b, book) for b in chosen])
        for n, cards in enumerate(plain_parts, start=1):
            chapter = f"{(n + 1) // 2}. Chapter {(n + 1) // 2} of Book {book}"
            header = f"# Flashcards: {source} (Part {n})\n\n**Starting Chapter:** {chapter}\n\n---\n\n"
            _write(os.path.join(folder, f"flashcards-part-{n:02d}.md"), header + "\n\n---\n\n".join(cards) + "\n\n---\n")
            files += 1
            total += sum(c.count(":p ") for c in cards)
        for n in range(1, parts):
            following = plain_parts[n]  # plain Part n+1
            cards = []
            for i, card in enumerate(following):
                if i % 5 in HQ_SHARE:
                    if i % 10 == 0:  # a near-duplicate: the HQ copy is slightly reworded
                        card = card.replace("x??", "Also see the chapter summary.\nx??", 1)
                    cards.append("**Rating: 8/10**\n\n" + card)
            chapter = f"{(n + 2) // 2}. Chapter {(n + 2) // 2} of Book {book}"
            header = (
                f"# High-Quality Flashcards: {source} (Part {n})\n\n**Rating threshold:** >= 8/10\n\n"
                f"**Starting Chapter:** {chapter}\n\n---\n\n"
            )
            _write(os.path.join(folder, f"hq-part-{n:02d}.md"), header + "\n\n---\n\n".join(cards) + "\n\n---\n")
            files += 1
            total += sum(c.count(":p ") for c in cards)
        book += 1
        books += 1
    return {"books": books, "files": files, "questions": total, "blocks": len(blocks), "per_card": per_card}


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--questions", type=int, default=100_000)
    args = parser.parse_args()
    print(generate(args.corpus, args.out, args.questions))
