"""The traffic router: stable sticky buckets (across processes), weights, forced variants,
and the answer of each policy."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest

from mloop.deploy.router import BUCKETS, TrafficRouter, bucket
from mloop.deploy.spec import parse_spec
from mloop.errors import NotFoundError


def spec(policy="ab", **sections):
    variants = [
        {"name": "control", "model": "churn@production"},
        {"name": "challenger", "model": "churn/2"},
    ]
    if policy == "ab":
        variants[0]["weight"], variants[1]["weight"] = 80, 20
    if policy == "blue_green":
        variants[0]["name"], variants[1]["name"] = "blue", "green"
    return parse_spec({"name": "exp", "policy": policy, "variants": variants, **sections})


KEYS = [f"user-{i}" for i in range(4000)]


def test_bucket_is_sha256_of_name_and_key():
    import hashlib

    digest = hashlib.sha256(b"exp\x00user-1").digest()
    assert bucket("exp", "user-1") == int.from_bytes(digest[:8], "big") % BUCKETS
    assert 0 <= bucket("exp", "") < BUCKETS


def test_assignment_is_identical_in_another_process_with_another_hash_seed():
    router = TrafficRouter(spec())
    here = {key: router.choose(key).variant for key in KEYS[:300]}
    code = (
        "import json, sys\n"
        "from mloop.deploy.router import TrafficRouter\n"
        "from mloop.deploy.spec import parse_spec\n"
        "spec = parse_spec(json.loads(sys.argv[1]))\n"
        "router = TrafficRouter(spec)\n"
        "print(json.dumps({f'user-{i}': router.choose(f'user-{i}').variant for i in range(300)}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec().to_json())],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(out.stdout) == here


def test_sticky_keys_follow_the_weights_and_never_move():
    router = TrafficRouter(spec())
    first = {key: router.choose(key).variant for key in KEYS}
    assert {key: router.choose(key).variant for key in KEYS} == first
    share = Counter(first.values())["challenger"] / len(KEYS)
    assert 0.17 < share < 0.23  # 20% by weight


def test_keyless_requests_draw_with_the_weights():
    router = TrafficRouter(spec(), rng=random.Random(3))
    draws = Counter(router.choose().variant for _ in range(5000))
    assert 0.17 < draws["challenger"] / 5000 < 0.23


def test_forced_variant_wins_and_an_unknown_one_is_refused():
    router = TrafficRouter(spec())
    choice = router.choose("user-1", forced="challenger")
    assert (choice.variant, choice.model_ref, choice.forced) == ("challenger", "churn/2", True)
    with pytest.raises(NotFoundError, match="has no variant 'nope'"):
        router.choose("user-1", forced="nope")


def test_blue_green_answers_from_the_active_slot_only():
    router = TrafficRouter(spec("blue_green", blue_green={"active": "green"}))
    assert {router.choose(key).variant for key in KEYS[:200]} == {"green"}
    assert router.shares() == {"blue": 0.0, "green": 100.0}


def test_canary_gives_the_candidate_its_current_percent():
    section = {"candidate": "challenger", "start_percent": 10}
    router = TrafficRouter(spec("canary", canary=section))
    assert router.shares() == {"control": 90.0, "challenger": 10.0}
    at_10 = {k for k in KEYS if router.choose(k).variant == "challenger"}
    assert 0.07 < len(at_10) / len(KEYS) < 0.13
    wider = TrafficRouter(spec("canary", canary={**section, "percent": 40}))
    at_40 = {k for k in KEYS if wider.choose(k).variant == "challenger"}
    assert at_10 <= at_40  # raising the percent never moves a user back off the canary
    rolled = TrafficRouter(spec("canary", canary={**section, "percent": 0}))
    assert {rolled.choose(k).variant for k in KEYS[:200]} == {"control"}


def test_shadow_mirrors_its_share_without_changing_who_answers():
    router = TrafficRouter(spec("shadow", shadow={"candidate": "challenger", "share": 25}))
    choices = [router.choose(key) for key in KEYS]
    assert {c.variant for c in choices} == {"control"}
    mirrored = [c for c in choices if c.shadow_ref]
    assert 0.21 < len(mirrored) / len(KEYS) < 0.29
    assert {(c.shadow_ref, c.shadow_variant) for c in mirrored} == {("churn/2", "challenger")}
    assert [c.shadow_ref for c in choices] == [router.choose(k).shadow_ref for k in KEYS]


def test_single_always_answers_with_its_model():
    router = TrafficRouter(
        parse_spec({"name": "one", "variants": [{"name": "main", "model": "churn/1"}]})
    )
    assert router.choose("anyone").model_ref == "churn/1"
    assert router.choose().variant == "main"
