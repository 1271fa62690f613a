"""Synthetic but realistic chat turns for load and latency benchmarks (deterministic for a seed).

Turns are built from templates about everyday life (family, hobbies, trips, work, food, pets) with
names, places and times drawn at random, alternating user and assistant, so the text embedder sees
natural sentences of typical length (15-35 words) with a realistic spread of topics.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["SyntheticTurn", "synthetic_queries", "synthetic_turns"]

NAMES = [
    "Ann",
    "Ben",
    "Caroline",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Luca",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
]
RELATIONS = [
    "sister",
    "brother",
    "mother",
    "father",
    "cousin",
    "best friend",
    "neighbour",
    "coworker",
    "grandmother",
    "roommate",
    "daughter",
    "son",
]
PLACES = [
    "Lisbon",
    "the lake house",
    "the farmers market",
    "Kyoto",
    "the climbing gym",
    "my aunt's farm",
    "the new library",
    "Barcelona",
    "the botanical garden",
    "the beach",
    "the jazz bar downtown",
    "Vancouver",
    "the pottery studio",
    "the mountains",
    "the community center",
    "Mexico City",
]
ACTIVITIES = [
    "pottery",
    "rock climbing",
    "sourdough baking",
    "painting watercolours",
    "running half marathons",
    "learning Spanish",
    "playing the violin",
    "birdwatching",
    "woodworking",
    "salsa dancing",
    "gardening",
    "photography",
    "chess",
    "kayaking",
    "knitting",
    "volunteering at the shelter",
]
PETS = [
    "a puppy named Rex",
    "two cats",
    "a rescue greyhound",
    "a parrot called Kiwi",
    "a goldfish",
    "a bunny named Clover",
]
FOODS = [
    "homemade ramen",
    "a lemon tart",
    "vegetable curry",
    "tacos al pastor",
    "mushroom risotto",
    "banana bread",
    "grilled salmon",
    "dumplings",
]
FEELINGS = [
    "amazing",
    "exhausting but worth it",
    "really relaxing",
    "a bit stressful",
    "so much fun",
    "surprisingly emotional",
    "peaceful",
    "inspiring",
]
WHEN = [
    "last weekend",
    "yesterday",
    "two weeks ago",
    "on Friday night",
    "this morning",
    "last summer",
    "over the holidays",
    "a few days ago",
]
JOBS = ["a nurse", "a software engineer", "a teacher", "a counselor", "a chef", "an architect", "a designer"]

USER_TEMPLATES = [
    "I went to {place} with my {relation} {when}, and honestly it was {feeling}.",
    "I've been getting into {activity} lately; I started {when} and I'm hooked.",
    "My {relation} {name} just got a job as {job}, we're all so proud of them.",
    "We adopted {pet} {when}! The house feels completely different now.",
    "I cooked {food} for my {relation} {when} and they asked for the recipe.",
    "Work has been {feeling} this month; I'm thinking about becoming {job} instead.",
    "{name} and I are planning a trip to {place} next spring to try {activity}.",
    "Do you remember when I told you about {activity}? I finally signed up for a class at {place}.",
    "I'm a bit worried about my {relation}; they haven't been sleeping well since {when}.",
    "I ran into {name} at {place} {when} and we talked for hours about {activity}.",
    "I finished my first painting of {place}; it took me three weeks but it felt {feeling}.",
    "My {relation} gave me a book about {activity} for my birthday {when}.",
]
ASSISTANT_TEMPLATES = [
    "That sounds {feeling}! What was the best part of {place} for you?",
    "How wonderful. How long have you been interested in {activity}?",
    "It's great that your {relation} is doing well. Have you told {name} how proud you are?",
    "Congratulations on {pet}! How are they settling in?",
    "{food} sounds delicious. Would you share what made it special?",
    "Changing careers is a big step. What draws you to being {job}?",
    "A trip to {place} sounds lovely. Are you going to plan it together with {name}?",
    "I'm sorry to hear that about your {relation}. Is there anything that helped before?",
]
QUERY_TEMPLATES = [
    "When did I go to {place}?",
    "What did I cook for my {relation}?",
    "Which pet did we adopt?",
    "What hobby did I start recently?",
    "What job did my {relation} get?",
    "Who did I meet at {place}?",
    "Where are we planning to travel with {name}?",
    "What book did I get for my birthday?",
    "How was the class about {activity}?",
    "What am I worried about with my {relation}?",
]


@dataclass(frozen=True, slots=True)
class SyntheticTurn:
    """One generated chat turn."""

    user_id: str
    session_id: str
    role: str
    name: str
    text: str
    timestamp: datetime


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        place=rng.choice(PLACES),
        relation=rng.choice(RELATIONS),
        when=rng.choice(WHEN),
        feeling=rng.choice(FEELINGS),
        activity=rng.choice(ACTIVITIES),
        name=rng.choice(NAMES),
        job=rng.choice(JOBS),
        pet=rng.choice(PETS),
        food=rng.choice(FOODS),
    )


def synthetic_turns(
    n: int,
    users: int = 10,
    session_turns: int = 20,
    seed: int = 0,
    start: datetime = datetime(2023, 1, 1, 9, 0, tzinfo=UTC),
) -> Iterator[SyntheticTurn]:
    """``n`` turns spread over ``users`` users, in sessions of ``session_turns`` turns.

    Sessions are interleaved across users (user 0 session 0, user 1 session 0, ...), one day apart per
    user, turns one minute apart; each user's assistant replies alternate with the user's turns.
    """
    rng = random.Random(seed)
    produced = 0
    session = 0
    while produced < n:
        for u in range(users):
            if produced >= n:
                break
            uid = f"user-{u:04d}"
            me = NAMES[u % len(NAMES)]
            day = start + timedelta(days=session, hours=rng.randint(0, 10))
            for k in range(min(session_turns, n - produced)):
                user_turn = k % 2 == 0
                tmpl = rng.choice(USER_TEMPLATES if user_turn else ASSISTANT_TEMPLATES)
                yield SyntheticTurn(
                    user_id=uid,
                    session_id=f"{uid}-s{session:05d}",
                    role="user" if user_turn else "assistant",
                    name=me if user_turn else "assistant",
                    text=_fill(rng, tmpl),
                    timestamp=day + timedelta(minutes=k),
                )
                produced += 1
        session += 1


def synthetic_queries(n: int, seed: int = 1) -> list[str]:
    """``n`` questions in the style of the turns."""
    rng = random.Random(seed)
    return [_fill(rng, rng.choice(QUERY_TEMPLATES)) for _ in range(n)]
