"""The prompt a provider receives for a refinement: the session's context in one request."""

from __future__ import annotations


def compose_prompt(original: str, instructions: list[str], *, has_base: bool) -> str:
    """One coherent prompt from the session's original prompt and the chain of instructions
    that led here (oldest first; the last one is the change asked for now).

    >>> compose_prompt("a lighthouse", ["make the sky stormier"], has_base=True)[:60]
    'a lighthouse. Edit the provided image: make the sky stormier'
    """
    if not instructions:
        return original
    *earlier, latest = instructions
    if not has_base:
        changes = "; ".join([*earlier, latest])
        return f"{original}. With these changes: {changes}."
    text = f"{original}."
    if earlier:
        text += " Earlier changes already in the image: " + "; ".join(earlier) + "."
    return f"{text} Edit the provided image: {latest}. Keep everything else as it is."
