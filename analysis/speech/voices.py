"""Simulated speakers' voices: each speaker id maps, deterministically, to an espeak-ng accent, voice variant,
speed and pitch, so one speaker always sounds the same and the same speaker ids give the same voices on every
machine."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

# The 8 English accents of Debian's espeak-ng, by name -> voice file. Files, not names: "en-gb+f4" ignores its
# variant (the name matches by language and the variant is dropped), "gmw/en+f4" does not.
ACCENTS: dict[str, str] = {
    "en-us": "gmw/en-US",
    "en-us-nyc": "gmw/en-US-nyc",
    "en-gb": "gmw/en",
    "en-gb-x-rp": "gmw/en-GB-x-rp",
    "en-gb-scotland": "gmw/en-GB-scotland",
    "en-gb-x-gbclan": "gmw/en-GB-x-gbclan",
    "en-gb-x-gbcwmd": "gmw/en-GB-x-gbcwmd",
    "en-029": "gmw/en-029",
}
# espeak-ng's plain male and female variants (of its ~100, the rest are robots, whispers and characters).
VARIANTS: tuple[str, ...] = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
SPEED_WPM = (140, 190)  # espeak-ng's default is 175 words per minute
PITCH = (30, 70)  # espeak-ng's 0..99 scale, default 50

# Changing the salt gives every speaker another voice (and every synthesised file another name): keep it.
_SALT = "turnlens/speech-voice/v1"


@dataclass(frozen=True)
class Voice:
    """One simulated speaker's voice: accent (a key of ACCENTS), variant (one of VARIANTS), speed in words per
    minute and pitch (espeak-ng's 0..99)."""

    accent: str
    variant: str
    speed: int
    pitch: int

    def __post_init__(self) -> None:
        if self.accent not in ACCENTS:
            raise ValueError(f"unknown accent {self.accent!r}; expected one of {', '.join(ACCENTS)}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {', '.join(VARIANTS)}")
        if not 80 <= self.speed <= 450:
            raise ValueError(f"speed must be 80..450 words per minute, got {self.speed}")
        if not 0 <= self.pitch <= 99:
            raise ValueError(f"pitch must be 0..99, got {self.pitch}")

    @property
    def espeak_voice(self) -> str:
        """The -v argument of espeak-ng: voice file + variant."""
        return f"{ACCENTS[self.accent]}+{self.variant}"

    def describe(self) -> dict:
        return asdict(self)


def voice_for(speaker_id: str) -> Voice:
    """The voice of a simulated speaker: accent, variant, speed and pitch drawn uniformly from the first bytes of
    sha256(salt NUL speaker_id). Deterministic: the same id always gets the same voice, in any process."""
    if not isinstance(speaker_id, str) or not speaker_id:
        raise ValueError("speaker_id must be a non-empty string")
    h = hashlib.sha256(f"{_SALT}\0{speaker_id}".encode()).digest()
    accents = list(ACCENTS)
    return Voice(accent=accents[int.from_bytes(h[0:4], "big") % len(accents)],
                 variant=VARIANTS[int.from_bytes(h[4:8], "big") % len(VARIANTS)],
                 speed=SPEED_WPM[0] + int.from_bytes(h[8:12], "big") % (SPEED_WPM[1] - SPEED_WPM[0] + 1),
                 pitch=PITCH[0] + int.from_bytes(h[12:16], "big") % (PITCH[1] - PITCH[0] + 1))
