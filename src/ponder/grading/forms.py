"""Whether a reply carries a checkable final answer, and of which form.

Votes over answers work when equal answers are spelled alike: a number, a boxed
expression, a multiple-choice letter, a program. An open-ended reply (an explanation, a
summary, advice) has none of these; two such replies agree in meaning while every
word differs. ``answer_form`` tells them apart on a reply's final answer (its thinking
set aside, ``ponder.core.reasoning``), so a caller can vote on answers when the samples
have them and select by meaning when they do not (``ponder serve``'s free-form policy).

The forms, first match wins:

- ``boxed``: a ``\\boxed{...}`` or ``\\fbox{...}``;
- ``hashes``: an answer after ``####`` (GSM8K's form);
- ``code``: a fenced code block;
- ``choice``: the reply, or the phrase after "the answer is" / "answer:", is one
  option letter A to J (``B``, ``(B)``, ``B.``, ``B)``);
- ``number``: that phrase starts with a number, or the whole reply is a short one
  (at most ``SHORT_REPLY_CHARS`` characters) that starts or ends with a number:
  ``2 + 3 = 5``, ``12 apples.``, but not ``Give it 6 hours of sun a day.``

None is an open-ended reply, for which a number somewhere in a paragraph is no answer.
"""

from __future__ import annotations

import re

from ponder.core.reasoning import final_answer

__all__ = ["ANSWER_FORMS", "SHORT_REPLY_CHARS", "answer_form"]

ANSWER_FORMS = ("boxed", "hashes", "code", "choice", "number")

SHORT_REPLY_CHARS = 80
"""The longest reply whose number is its answer without an answer phrase."""

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"####[ \t]*\S")
_CODE = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)
_PHRASE = re.compile(r"(?:final\s+answer|the\s+answer\s+is|answer\s*[:：])\s*(.*)", re.IGNORECASE)
_CHOICE = re.compile(r"^\(?([A-J])\)?[.)]?$")
_NUMBER = re.compile(r"^[$\\(]*[-+−]?\d[\d,]*(?:\.\d+)?")
_LAST_NUMBER = re.compile(r"\d(?:[\d,]*\d)?(?:\.\d+)?\s*[%$°]?[\s.!)*]*$")


def answer_form(text: str) -> str | None:
    """The form of the checkable final answer in ``text`` (one of ``ANSWER_FORMS``),
    or None when it has none; see the module docstring."""
    reply = final_answer(text).strip()
    if _BOXED.search(reply):
        return "boxed"
    if _HASHES.search(reply):
        return "hashes"
    if _CODE.search(reply):
        return "code"
    phrases = _PHRASE.findall(reply)
    phrase = phrases[-1].strip().strip("*").strip() if phrases else None
    for candidate in (phrase, reply.strip("*").strip()):
        if candidate is not None and _CHOICE.match(candidate):
            return "choice"
    if phrase is not None and _NUMBER.match(phrase):
        return "number"
    if len(reply) <= SHORT_REPLY_CHARS and (_NUMBER.match(reply) or _LAST_NUMBER.search(reply)):
        return "number"
    return None
