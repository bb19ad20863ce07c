import copy

import gymnasium as gym
import numpy as np
import pytest

from swirl_envs.spaces import TranscriptSpace

UNICODE_TEXT = "Café – naïve 東京 Ελληνικά 🚀 \x00 line\nbreak"


def test_transcript_space_contains_any_unicode_string_within_length():
    space = TranscriptSpace(100)
    assert space.contains(UNICODE_TEXT)
    assert space.contains("")
    assert not space.contains("x" * 101)
    assert not space.contains(b"bytes")
    assert not space.contains(None)


def test_samples_belong_to_the_space():
    space = TranscriptSpace(50, seed=0)
    assert all(space.contains(space.sample()) for _ in range(20))


def test_equality_and_hash_depend_on_bounds_only():
    assert TranscriptSpace(10) == TranscriptSpace(10)
    assert TranscriptSpace(10) != TranscriptSpace(11)
    assert TranscriptSpace(10) != gym.spaces.Text(10)
    assert hash(TranscriptSpace(10)) == hash(TranscriptSpace(10))


def test_shared_memory_round_trip_keeps_every_code_point():
    from gymnasium.vector.utils import (
        create_shared_memory,
        read_from_shared_memory,
        write_to_shared_memory,
    )

    space = TranscriptSpace(64)
    memory = create_shared_memory(space, n=2)
    write_to_shared_memory(space, 0, UNICODE_TEXT, memory)
    write_to_shared_memory(space, 1, "short", memory)
    view = read_from_shared_memory(space, memory, n=2)
    assert view == (UNICODE_TEXT, "short")
    write_to_shared_memory(space, 1, "changed later", memory)
    assert view == (UNICODE_TEXT, "changed later"), "the view must read the memory live"
    snapshot = copy.deepcopy(view)
    write_to_shared_memory(space, 1, "again", memory)
    assert snapshot == (UNICODE_TEXT, "changed later") and isinstance(snapshot, tuple)


@pytest.mark.parametrize("value", ["", "a" * 64])
def test_shared_memory_handles_empty_and_full_strings(value):
    from gymnasium.vector.utils import (
        create_shared_memory,
        read_from_shared_memory,
        write_to_shared_memory,
    )

    space = TranscriptSpace(64)
    memory = create_shared_memory(space, n=1)
    write_to_shared_memory(space, 0, "previous value that is longer", memory)
    write_to_shared_memory(space, 0, value, memory)
    assert read_from_shared_memory(space, memory, n=1) == (value,)
    assert np.frombuffer(memory.get_obj(), dtype=np.int32).shape == (64,)
