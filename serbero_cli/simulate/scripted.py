"""Scripted parties: answer each new question from the admin once, from a list of answers.

`serbero demo` and the end-to-end tests drive a whole mediation with these instead of
hand-written reply loops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from serbero_cli.simulate import aio
from serbero_cli.simulate.party import ChatMessage, PartySim

Answer = str | Callable[[str], str | None]


@dataclass(frozen=True)
class Exchange:
    """One question the party saw and what it answered (None: it had nothing left to say)."""

    question: ChatMessage
    answer: str | None


@dataclass
class PartyScript:
    """Answers every new admin message once, in order, with the next entry of `answers`.

    An entry is a string or a callable taking the question text (returning None skips the reply).
    When the answers run out, later questions are marked seen and left unanswered, unless
    `repeat_last` is set.
    """

    party: PartySim
    answers: Sequence[Answer]
    repeat_last: bool = False
    exchanges: list[Exchange] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, init=False, repr=False)
    _next: int = field(default=0, init=False, repr=False)

    @property
    def role(self) -> str:
        return self.party.role

    @property
    def exhausted(self) -> bool:
        return self._next >= len(self.answers) and not self.repeat_last

    def _pick(self, question: str) -> str | None:
        if self._next < len(self.answers):
            entry = self.answers[self._next]
            self._next += 1
        elif self.repeat_last and self.answers:
            entry = self.answers[-1]
        else:
            return None
        return entry(question) if callable(entry) else entry

    async def step_async(self) -> list[Exchange]:
        """Read the chat once and answer each question not seen before; return this step's exchanges."""
        done = []
        for message in await self.party.messages_async():
            if message.inner_id in self._seen:
                continue
            self._seen.add(message.inner_id)
            answer = self._pick(message.content)
            if answer is not None:
                await self.party.reply_async(answer)
            done.append(Exchange(message, answer))
        self.exchanges.extend(done)
        return done

    def step(self) -> list[Exchange]:
        return aio.run(self.step_async())


def step_all(scripts: Sequence[PartyScript]) -> list[Exchange]:
    """One step of every script (e.g. buyer and seller after each `mediate-once` run)."""
    out: list[Exchange] = []
    for script in scripts:
        out.extend(script.step())
    return out
