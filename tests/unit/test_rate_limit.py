import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camera_service.auth.rate_limit import TokenBucket


def drain(bucket, now, limit=10_000):
    taken = 0
    while bucket.try_take(now) == 0.0:
        taken += 1
        assert taken < limit, "bucket never ran dry"
    return taken


def test_burst_then_retry_after_then_refill():
    bucket = TokenBucket(rate_per_minute=60, burst=5)  # one token per second
    t = 1000.0
    assert drain(bucket, t) == 5
    retry = bucket.try_take(t)
    assert retry == pytest.approx(1.0)
    # Half-way there: still refused, and the wait shrank accordingly.
    assert bucket.try_take(t + 0.5) == pytest.approx(0.5)
    # Waiting exactly as advised is enough.
    assert bucket.try_take(t + 1.0) == 0.0
    assert bucket.try_take(t + 1.0) == pytest.approx(1.0)


def test_retry_after_scales_with_rate():
    bucket = TokenBucket(rate_per_minute=1200, burst=1)  # 20 per second
    assert bucket.try_take(5.0) == 0.0
    assert bucket.try_take(5.0) == pytest.approx(0.05)


def test_long_idle_refills_only_up_to_burst():
    bucket = TokenBucket(rate_per_minute=600, burst=3)
    drain(bucket, 0.0)
    assert drain(bucket, 1e6) == 3


def test_first_request_sees_a_full_bucket_whatever_the_clock():
    for start in (0.0, -50.0, 123456.789):
        bucket = TokenBucket(60, 4)
        assert drain(bucket, start) == 4


@pytest.mark.parametrize("rpm,burst", [(0, 10), (10, 0), (0, 0)])
def test_zero_disables(rpm, burst):
    bucket = TokenBucket(rpm, burst)
    assert not bucket.enabled
    assert all(bucket.try_take(1.0) == 0.0 for _ in range(10_000))


def test_negative_values_rejected():
    with pytest.raises(ValueError):
        TokenBucket(-1, 5)
    with pytest.raises(ValueError):
        TokenBucket(5, -1)


def test_clock_going_backwards_does_not_mint_tokens():
    bucket = TokenBucket(60, 2)
    drain(bucket, 100.0)
    assert bucket.try_take(50.0) > 0.0
    assert bucket.try_take(100.5) == pytest.approx(0.5)


def test_reconfigure_keeps_level_clipped_to_new_burst():
    bucket = TokenBucket(60, 10)
    for _ in range(2):
        assert bucket.try_take(0.0) == 0.0
    bucket.reconfigure(60, 3)
    assert bucket.tokens == 3
    assert drain(bucket, 0.0) == 3
    # Raising the burst does not hand out the difference.
    bucket.reconfigure(60, 100)
    assert bucket.try_take(0.0) > 0.0


def test_reconfigure_from_disabled_starts_full_and_back():
    bucket = TokenBucket(0, 0)
    bucket.reconfigure(60, 2)
    assert bucket.enabled
    assert drain(bucket, 7.0) == 2
    bucket.reconfigure(0, 2)
    assert not bucket.enabled
    assert bucket.try_take(7.0) == 0.0


def test_reconfigure_new_rate_applies_to_refill():
    bucket = TokenBucket(60, 1)
    assert bucket.try_take(0.0) == 0.0
    bucket.reconfigure(600, 1)
    assert bucket.try_take(0.0) == pytest.approx(0.1)


@settings(max_examples=200, deadline=None)
@given(
    rpm=st.integers(1, 100_000),
    burst=st.integers(1, 500),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=300),
)
def test_never_allows_more_than_burst_plus_rate_times_time(rpm, burst, gaps):
    bucket = TokenBucket(rpm, burst)
    t = 0.0
    allowed = 0
    for gap in gaps:
        t += gap
        retry = bucket.try_take(t)
        assert retry >= 0.0
        if retry == 0.0:
            allowed += 1
        else:
            # The advertised wait is exactly enough to have a token.
            assert retry <= 60.0 / rpm + 1e-9
    assert allowed <= burst + rpm / 60.0 * t + 1e-6


def test_refill_is_capped_exactly_at_burst():
    bucket = TokenBucket(rate_per_minute=60, burst=3)
    assert bucket.try_take(0.0) == 0.0
    # 1.5 s of refill on top of 2 tokens would be 3.5; the cap keeps it at 3.
    assert bucket.try_take(1.5) == 0.0
    assert bucket.tokens == 2.0
    assert drain(bucket, 1.5) == 2
    assert bucket.try_take(1.5) == pytest.approx(1.0)
