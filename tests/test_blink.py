import numpy as np
import pytest

from blinkgate.blink import BlinkDetector, BlinkOptions
from blinkgate.types import EyeState

O, C, U = EyeState.OPEN, EyeState.CLOSED, EyeState.UNKNOWN


def feed(det: BlinkDetector, states, fps: float = 30.0, track: int = 1, t0: float = 0.0):
    """Feed a state sequence at ``fps``; return the blinks found."""
    out = []
    for i, s in enumerate(states):
        b = det.update(track, t0 + i * 1000.0 / fps, s)
        if b:
            out.append(b)
    return out


def test_open_closed_open_is_one_blink():
    blinks = feed(BlinkDetector(), [O, O, O, C, C, C, O, O, O])
    assert len(blinks) == 1
    assert blinks[0].closed_frames == 3
    assert blinks[0].closed_ms == pytest.approx(133.3, abs=0.1)  # last open frame → first reopened


def test_needs_open_evidence_on_both_sides():
    # Closures of two frames (100 ms at 30 fps): long enough for a blink, so only the open
    # frames around them decide (one closed frame, 67 ms, would fail min_blink_ms instead).
    assert len(feed(BlinkDetector(), [O, O, C, C, O, O])) == 1
    assert feed(BlinkDetector(), [O, C, C, O, O]) == []  # one open frame before is not enough
    assert feed(BlinkDetector(), [O, O, C, C, O]) == []  # one open frame after is not enough
    three_after = BlinkOptions(min_open_after=3)  # the reopening frame counts as the first
    assert feed(BlinkDetector(three_after), [O, O, C, C, O, O]) == []
    assert len(feed(BlinkDetector(three_after), [O, O, C, C, O, O, O])) == 1


def test_the_open_run_before_a_closure_is_one_run():
    # Two open frames split by unreadable frames, or by a closed one, are no open run: the
    # frames before the closure must show open eyes, not a photo's flicker.
    assert feed(BlinkDetector(), [O, U, U, O, C, C, O, O]) == []
    assert feed(BlinkDetector(), [O, C, O, C, C, O, O]) == []
    assert len(feed(BlinkDetector(), [O, U, O, C, C, O, O])) == 1  # one unreadable frame is tolerated


def test_flicker_on_a_photo_is_not_a_blink():
    # What a flickering cascade on a photo looks like: isolated closed or unknown readings.
    noisy = [O, U, O, C, U, U, O, C, O, U, C, O, U, U, O]
    assert feed(BlinkDetector(), noisy) == []


def test_closure_longer_than_max_is_not_a_blink():
    det = BlinkDetector(BlinkOptions(max_closed_ms=500))
    assert feed(det, [O, O] + [C] * 20 + [O, O], fps=30) == []  # 667 ms closed
    det = BlinkDetector(BlinkOptions(max_closed_ms=500))
    assert len(feed(det, [O, O] + [C] * 12 + [O, O], fps=30)) == 1  # 400 ms closed


def test_a_one_frame_flicker_at_30_fps_is_too_short_for_a_blink():
    """Last open → next open must last ``min_blink_ms`` (80): one closed frame at 30 fps is
    67 ms, a flexing print's flicker; real blinks measured 100 ms or more."""
    assert feed(BlinkDetector(), [O, O, C, O, O], fps=30) == []
    assert len(feed(BlinkDetector(), [O, O, C, C, O, O], fps=30)) == 1  # 100 ms
    assert len(feed(BlinkDetector(), [O, O, C, O, O], fps=15)) == 1  # 133 ms: a frame is longer
    # The flicker does not break the open run: a real blink right after it still counts.
    assert len(feed(BlinkDetector(), [O, O, C, O, O, C, C, O, O], fps=30)) == 1
    # Two one-frame flickers with one open frame between are two flickers, not one 133-ms
    # closure: each is timed from its own last open frame.
    assert feed(BlinkDetector(), [O, O, C, O, C, O, O], fps=30) == []


def test_timing_is_in_milliseconds_not_frames():
    # The same 6-frame closure is a blink at 30 fps (200 ms) and not at 10 fps (600 ms).
    seq = [O, O] + [C] * 6 + [O, O]
    assert len(feed(BlinkDetector(), seq, fps=30)) == 1
    assert feed(BlinkDetector(), seq, fps=10) == []


def test_tracks_never_share_state():
    det = BlinkDetector()
    det.update(1, 0, O)
    det.update(1, 33, O)
    det.update(1, 66, C)
    det.update(1, 100, C)
    # Track 2 reopening does not complete track 1's blink.
    assert det.update(2, 133, O) is None
    assert det.update(2, 166, O) is None
    assert det.blinks(1) == 0 and det.blinks(2) == 0
    assert det.update(1, 133, O) is None
    assert det.update(1, 166, O) is not None
    assert det.blinks(1) == 1 and det.blinks(2) == 0


def test_drop_and_reset_forget_a_track():
    det = BlinkDetector()
    feed(det, [O, O, C, C, O, O])
    assert det.blinks(1) == 1
    det.drop(1)
    assert det.blinks(1) == 0 and det.history(1) == []


def test_history_is_bounded():
    det = BlinkDetector(BlinkOptions(history=10))
    feed(det, [O] * 100)
    assert len(det.history(1)) == 10


@pytest.mark.parametrize("name", ["max_closed_ms", "closed_ear_ratio", "blink_ear_ratio", "crease_change", "min_sharpness"])
def test_a_nan_option_is_refused(name):
    # max_closed_ms NaN: "closure > NaN" is false, and eyes shut for 2 s counted as a blink.
    with pytest.raises(ValueError, match=name):
        BlinkOptions(**{name: float("nan")})


def test_timestamps_must_increase():
    det = BlinkDetector()
    det.update(1, 100.0, O)
    with pytest.raises(ValueError, match="increase"):
        det.update(1, 100.0, O)


def test_half_closed_transition_frames_belong_to_the_blink():
    assert len(feed(BlinkDetector(), [O, O, U, C, U, C, U, U, O, O])) == 1


def test_a_gap_without_a_confident_closure_is_not_a_blink():
    assert feed(BlinkDetector(), [O, O, U, U, U, O, O, U, O, O]) == []


def test_reopening_must_be_confirmed():
    # Two unknown readings after a single open frame: the reopening is not confirmed.
    assert feed(BlinkDetector(), [O, O, C, O, U, U, O, O]) == []


def test_consecutive_blinks_share_the_open_run():
    assert len(feed(BlinkDetector(), [O, O, C, C, O, O, C, C, O, O])) == 2


def feed_signals(det: BlinkDetector, frames, fps: float = 30.0, sharpness: float | None = None):
    """Feed (state, ear, crease[, crease_lines]) tuples at ``fps``, every frame with the same eye
    ``sharpness``; return the blinks found."""
    out = []
    for i, (s, ear, crease, *lines) in enumerate(frames):
        b = det.update(1, i * 1000.0 / fps, s, ear=ear, crease=crease, crease_lines=lines[0] if lines else None,
                       sharpness=sharpness)
        if b:
            out.append(b)
    return out


def test_a_closure_counts_only_when_the_lids_meet():
    open_run = [(O, 0.30, None)] * 5
    real = open_run + [(C, 0.12, 0.0)] * 3 + open_run
    assert len(feed_signals(BlinkDetector(), real)) == 1
    # The CNN says closed but the landmarks' lids stay apart (a flexing print, a blurry eye).
    lids_apart = open_run + [(C, 0.28, 0.0)] * 3 + open_run
    assert feed_signals(BlinkDetector(), lids_apart) == []
    per_frame = BlinkOptions(blink_ear_ratio=1.0)  # the per-frame limit alone
    edge = per_frame.closed_ear_ratio * 0.30
    assert len(feed_signals(BlinkDetector(per_frame), open_run + [(C, edge * 0.99, 0.0)] * 2 + open_run)) == 1
    assert feed_signals(BlinkDetector(per_frame), open_run + [(C, edge * 1.01, 0.0)] * 2 + open_run) == []


def test_open_frames_of_zero_ear_are_no_baseline():
    # eye_aspect_ratio gives 0.0 for collapsed landmarks (a tiny face); an OPEN reading of it
    # made the open EAR median 0, and the next frame's ratio raised ZeroDivisionError.
    zero_open = [(O, 0.0, None)] * 5
    assert feed_signals(BlinkDetector(), zero_open + [(C, 0.12, 0.0)] * 3 + zero_open) == []


def test_the_lids_must_come_far_enough_together_somewhere_in_the_closure():
    """sim-s3-0045: a blurry folded print whose one lids-met frame sat just under the per-frame
    limit (EAR 0.71 of open). A real blink's lowest EAR was at most 0.65 of open in every clip."""
    opts = BlinkOptions()
    open_run = [(O, 0.30, None)] * 5
    shallow = opts.blink_ear_ratio * 1.02 * 0.30  # passes closed_ear_ratio, not blink_ear_ratio
    assert shallow <= opts.closed_ear_ratio * 0.30
    assert feed_signals(BlinkDetector(), open_run + [(C, shallow, None)] * 3 + open_run) == []
    deep = opts.blink_ear_ratio * 0.98 * 0.30
    blinks = feed_signals(BlinkDetector(), open_run + [(C, shallow, None), (C, deep, None)] + open_run)
    assert len(blinks) == 1 and blinks[0].ear_low == pytest.approx(0.98 * opts.blink_ear_ratio)
    # The lowest point may fall on a half-closed transition frame the CNN read UNKNOWN.
    assert len(feed_signals(BlinkDetector(), open_run + [(U, deep, None), (C, shallow, None)] + open_run)) == 1
    # A closure voided for it leaves the open run after it for the next blink.
    twice = open_run + [(C, shallow, None)] * 2 + [(O, 0.30, None)] * 2 + [(C, deep, None)] * 2 + open_run
    assert len(feed_signals(BlinkDetector(), twice)) == 1


def test_a_crease_that_appears_with_the_closure_voids_it():
    rise = BlinkOptions().crease_change
    open_run = [(O, 0.30, 0.1)] * 5
    assert len(feed_signals(BlinkDetector(), open_run + [(C, 0.1, 0.1 + rise * 0.9)] * 3 + open_run)) == 1
    folded = open_run + [(C, 0.1, 0.1), (C, 0.1, 0.1 + rise), (C, 0.1, 0.1)] + open_run
    assert feed_signals(BlinkDetector(), folded) == []
    # A crease on a half-closed (UNKNOWN) transition frame of the gap voids it too.
    assert feed_signals(BlinkDetector(), open_run + [(U, 0.2, 1.0), (C, 0.1, 0.1)] + open_run) == []


def test_a_line_that_goes_away_with_the_closure_voids_it():
    """sim-s5-0149: a flexing pleat whose line crossed the face on the open frames and was gone
    on the one closed frame. A blink does not move a line that runs past the face outline; real
    closures changed the best line's score by -0.09 to +0.19."""
    change = BlinkOptions().crease_change
    open_run = [(O, 0.30, 0.9)] * 5
    assert feed_signals(BlinkDetector(), open_run + [(C, 0.1, 0.9 - change * 1.01)] * 2 + open_run) == []
    assert len(feed_signals(BlinkDetector(), open_run + [(C, 0.1, 0.9 - change * 0.9)] * 2 + open_run)) == 1
    # Only a line that was on every open frame can go: NUAA live 0008_00_00_02 blinks 450 ms
    # into its track, after three open frames scoring 0.0, 0.46 and 0.31.
    noisy = [(O, 0.30, c) for c in (0.0, 0.46, 0.31)]
    assert len(feed_signals(BlinkDetector(), noisy + [(C, 0.1, 0.0)] * 2 + noisy)) == 1


def test_a_line_that_was_there_all_along_is_not_a_fold():
    """Glasses or a shelf behind the head score on open frames too: only a change counts."""
    steady = [(O, 0.30, 0.8)] * 5 + [(C, 0.1, 0.85)] * 3 + [(O, 0.30, 0.8)] * 5
    assert len(feed_signals(BlinkDetector(), steady)) == 1


def test_a_new_line_beside_an_old_one_voids_the_closure():
    """A fold landing beside a glasses rim leaves the best line's score where it was; compared
    line by line with the open frames, it is a new line."""
    rise = BlinkOptions().line_rise
    rim = np.zeros((13, 33), np.float32)
    rim[6, 10] = 0.8
    beside = rim.copy()
    beside[6, 14] = 0.8  # same level, another line
    open_run = [(O, 0.30, 0.8, rim)] * 5
    assert len(feed_signals(BlinkDetector(), open_run + [(C, 0.1, 0.8, rim)] * 2 + open_run)) == 1
    assert feed_signals(BlinkDetector(), open_run + [(C, 0.1, 0.8, beside)] * 2 + open_run) == []
    faint = rim.copy()
    faint[6, 14] = rise * 0.9  # a line that grew a little (glasses jitter) is not a fold
    assert len(feed_signals(BlinkDetector(), open_run + [(C, 0.1, 0.8, faint)] * 2 + open_run)) == 1


def test_the_line_baseline_follows_the_recent_open_frames():
    """A line seen on the open frames before one closure, gone from the open frames since (a
    print held flat): on the next closure it is new again, not part of a baseline kept from
    the first closure."""
    line = np.zeros((13, 33), np.float32)
    line[6, 10] = 0.8
    flat = np.zeros_like(line)
    with_line = [(O, 0.30, 0.0, line)] * 5
    first = with_line + [(C, 0.1, 0.0, line)] * 2 + with_line
    later = [(O, 0.30, 0.0, flat)] * BlinkOptions().baseline_frames + [(C, 0.1, 0.0, line)] * 2 + [(O, 0.30, 0.0, flat)] * 3
    assert len(feed_signals(BlinkDetector(), first)) == 1
    assert len(feed_signals(BlinkDetector(), first + later)) == 1  # the second closure is a fold


def test_without_landmark_signals_only_the_state_counts():
    """The Haar backend gives no EAR or crease: the state machine alone decides."""
    frames = [(O, None, None)] * 5 + [(C, None, None)] * 3 + [(O, None, None)] * 5
    assert len(feed_signals(BlinkDetector(), frames)) == 1


def test_no_blink_is_counted_on_eyes_too_blurred_to_show_lids():
    """sim-s6-0136: a blurred print flexing at 25 fps, read confidently closed on single frames
    (EAR 0.52-0.65 of open, no crease). Its open frames' median eye sharpness was 0.05-0.08; on
    real video it never fell under 0.115."""
    floor = BlinkOptions().min_sharpness
    flicker = [(O, 0.35, 0.0)] * 18 + [(C, 0.21, 0.0)] + [(O, 0.35, 0.0)] * 10
    assert feed_signals(BlinkDetector(), flicker, fps=25.0, sharpness=floor * 0.6) == []
    blinks = feed_signals(BlinkDetector(), flicker, fps=25.0, sharpness=floor * 2)
    assert len(blinks) == 1 and blinks[0].sharpness == pytest.approx(floor * 2)
    assert len(feed_signals(BlinkDetector(), flicker, fps=25.0)) == 1  # no sharpness (Haar eyes): no floor


def test_the_sharpness_floor_looks_at_the_open_frames_only():
    """A closed eye shows less detail than an open one (no iris, no lid edge): the floor is the
    median over the track's recent open frames, so a real closure is not judged by itself."""
    det = BlinkDetector()
    floor = det.options.min_sharpness
    # Most frames of this track are closed ones: over all frames, the median would be under the floor.
    frames = [(O, 0.30, None, floor * 2)] * 2 + [(C, 0.10, None, floor * 0.2)] * 8 + [(O, 0.30, None, floor * 2)] * 2
    found = [det.update(1, i * 33.3, s, ear=e, crease=c, sharpness=sh) for i, (s, e, c, sh) in enumerate(frames)]
    assert [b.sharpness for b in found if b] == [pytest.approx(floor * 2)]


def test_blurred_says_whether_a_closure_could_count_now():
    det = BlinkDetector()
    floor = det.options.min_sharpness
    assert not det.blurred(1)  # unseen track
    det.update(1, 0.0, O)
    assert not det.blurred(1)  # no sharpness reading (Haar eyes)
    for i, sharpness in enumerate([floor * 0.5] * 3, start=1):
        det.update(1, i * 33.3, O, sharpness=sharpness)
    assert det.blurred(1)
    det.update(1, 200.0, C, sharpness=floor * 10)  # closed frames do not move the baseline
    assert det.blurred(1)
