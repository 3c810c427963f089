"""Simulated print attacks: geometry, reproducibility, and that the gate rejects them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from blinkgate.cli import main
from blinkgate.errors import BlinkgateError
from blinkgate.evaluate import evaluate, load_manifest, make_pipeline, summarise
from blinkgate.simulate import (
    KINDS,
    AttackRenderer,
    Photo,
    PhotoLoader,
    _profile,
    draw_params,
    find_photos,
    flex_value,
    identity_of,
    make_sequence,
    sequence_plan,
    simulate,
)

from conftest import shared


def test_identity_from_file_names(tmp_path):
    assert identity_of(tmp_path / "0012_01_05_03_117.jpg") == "nuaa-0012"
    assert identity_of(tmp_path / "Hugh_Grant_0003.jpg") == "Hugh_Grant"
    assert identity_of(tmp_path / "obama2.jpg") == "obama2"


def test_flex_over_time():
    assert flex_value({"base": 0.3, "amp": 0.0, "mode": "static"}, 5.0) == 0.3
    sine = {"base": 0.5, "amp": 0.2, "mode": "sine", "freq": 1.0, "phase": 0.0}
    assert flex_value(sine, 0.25) == pytest.approx(0.7)
    pulse = {"base": 0.0, "amp": 1.4, "mode": "pulses", "pulses": [[1.0, 0.2]]}
    assert [flex_value(pulse, t) for t in (0.9, 1.0, 1.2, 1.3)] == [0.0, 0.0, pytest.approx(0.0), 0.0]
    assert flex_value(pulse, 1.1) == pytest.approx(1.4)  # folded flat out at the middle of the pulse


def test_bending_keeps_paper_length():
    xs = np.linspace(-8, 6, 400)
    angle = 0.1 * xs + 1.2 * (np.tanh((xs + 1) / 0.1) - np.tanh((xs - 1) / 0.1)) / 2
    along, depth = _profile(xs, angle)
    assert np.hypot(np.diff(along), np.diff(depth)).sum() == pytest.approx(14.0, rel=1e-6)
    assert np.interp(0.0, xs, along) == pytest.approx(0.0) and np.interp(0.0, xs, depth) == pytest.approx(0.0)
    assert np.ptp(along) < 14.0 - 1.0  # the pleat and the curve take up length


def test_parameters_are_reproducible_and_serialisable():
    for kind in KINDS:
        a = draw_params(np.random.default_rng(5), kind)
        b = draw_params(np.random.default_rng(5), kind)
        assert json.dumps(a) == json.dumps(b) and a["kind"] == kind and 6.0 <= a["duration_s"] <= 10.0
    folded = [draw_params(np.random.default_rng(s), "folded-print")["shape"] for s in range(40)]
    assert {f["variant"].split("/")[0] for f in folded} == {"pleat", "fold"}
    assert {f["variant"].split("/")[1] for f in folded} == {"pulses", "sine"}
    pulses = [p for f in folded if f["variant"].endswith("pulses") for p in f[f["variant"].split("/")[0]]["pulses"]]
    assert pulses and all(0.12 <= d <= 0.5 for _, d in pulses)  # blink-like: 120-500 ms
    with pytest.raises(BlinkgateError, match="unknown attack kind"):
        draw_params(np.random.default_rng(0), "screen-replay")


def _stripe_photo() -> Photo:
    """A synthetic 'photo': grey face, a red band exactly on the eye line, fake landmarks."""
    img = np.full((300, 240, 3), 170, np.uint8)
    img[140:156] = (0, 0, 255)
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(60, 180, 68)
    pts[:, 1] = 200
    for eye, cx in ((slice(36, 42), 90), (slice(42, 48), 150)):
        pts[eye] = [(cx - 15, 148), (cx - 5, 142), (cx + 5, 142), (cx + 15, 148), (cx + 5, 154), (cx - 5, 154)]
    return Photo(Path("stripe.png"), img, pts, "stripe")


def _still_params(kind: str = "folded-print") -> dict:
    p = draw_params(np.random.default_rng(1), kind, duration=1.0)
    p["fps"] = 10.0
    pose = p["pose"]
    pose.update(yaw=0.0, pitch=0.0, roll=0.0, drift_xy_cm=0.0, drift_z=0.0, approach=[0.0, 0.1, 0.0], drift_deg=0.0,
                tremor_cm=0.0, tremor_deg=0.0, jitter_cm=0.0, at=[0.0, 0.0], iod_px=80.0)
    p["print"].update(border=0.0, grain=0.0, saturation=1.0, cast=[1.0, 1.0, 1.0], sharpness=0.0, black=0.0, white=255.0, gamma=1.0)
    p["light"].update(gloss=0.0, flicker=[0.0, 0.1, 0.0], switch=None, gain=1.0, temperature=[1.0, 1.0, 1.0], ambient=1.0)
    p["camera"].update(defocus=0.3, noise=0.0, chroma_noise=0.0)
    p["hand"]["grip"], p["hand"]["body"] = "none", False
    return p


def _red_rows(frame: np.ndarray) -> int:
    b, g, r = (frame[..., i].astype(int) for i in range(3))
    return int(((r > 150) & (g < 110) & (b < 110)).any(axis=1).sum())


def test_every_kind_is_drawn_from_every_photo_pool():
    """Two kinds over two folders paired each kind with one folder: every folded print came from
    the same photos. Counts with no common factor (the defaults) keep the plan they always had."""
    from collections import Counter

    pools = [[Path("faces/a.jpg")], [Path("nuaa/b.jpg")]]
    two = sequence_plan(pools, 8, 0, ["folded-print", "bent-print"])
    assert Counter((kind, pool[0].parent.name) for _, kind, pool in two) == {
        (k, f): 2 for k in ("folded-print", "bent-print") for f in ("faces", "nuaa")}
    three = sequence_plan(pools, 12, 0, list(KINDS))
    assert [(kind, pool) for _, kind, pool in three] == [(KINDS[i % 3], pools[i % 2]) for i in range(12)]


def test_a_short_duration_draws_its_light_switch_inside_the_clip():
    # The switch was drawn between 1 s and the duration: below 1 s numpy raised.
    for s in range(40):
        p = draw_params(np.random.default_rng(s), "print", duration=0.6)
        assert p["light"]["switch"] is None or p["light"]["switch"][0] <= 0.6


def test_a_flat_still_print_lands_where_asked():
    p = _still_params("print")
    p["shape"]["kx"]["base"] = p["shape"]["ky"]["base"] = 0.0
    frame = AttackRenderer(_stripe_photo(), p, [0, 0, 0]).frame()
    rows = np.flatnonzero(((frame[..., 2] > 150) & (frame[..., 1] < 110)).any(axis=1))
    assert abs(rows.mean() - 240) < 3  # the eye line at the frame's centre
    assert _red_rows(frame) == pytest.approx(16 * 80 / 60, abs=2)  # 16 px band, eyes 60 px apart shown 80 px apart


def test_a_pleat_over_the_eyes_hides_them_and_gives_them_back():
    """The blink-imitating attack: at the pulse's peak the band on the eye line is folded away."""
    p = _still_params()
    sh = p["shape"]
    sh["variant"] = "pleat/pulses"
    sh.update(pleat_at=0.0, pleat_h=1.4, crease_w=0.05, kx={"base": 0.0, "amp": 0.0, "mode": "static"},
              ky={"base": 0.0, "amp": 0.0, "mode": "static"})
    sh["pleat"] = {"base": 0.0, "amp": math.radians(88), "mode": "pulses", "pulses": [[0.3, 0.4]]}
    r = AttackRenderer(_stripe_photo(), p, [0, 0, 0])
    visible = [_red_rows(r.frame()) for _ in range(10)]  # t = 0.0 .. 0.9 s
    assert visible[0] >= 10 and visible[9] >= 10
    assert visible[5] <= visible[0] / 4  # t = 0.5 s: the strip is edge-on, a line where the band was
    assert visible[4] < visible[0] and visible[6] < visible[0]  # folding and unfolding


def test_a_sheet_curled_past_the_lens_is_drawn_without_it():
    """A V-fold held 8 cm away with its corners bent 30 cm towards the camera: the corner and the
    hand gripping it are behind the lens (a real case: seed 19 sequence 16 stopped its whole set)."""
    p = _still_params("bent-print")
    p["shape"]["variant"] = "vfold/static"
    p["shape"]["vfold"] = {"base": -1.2, "amp": 0.0, "mode": "static"}
    p["hand"]["grip"] = "corner"
    r = AttackRenderer(_stripe_photo(), p, [0, 0, 0])
    r.z0 = 8.0
    rot, trans = r.pose(0.0)
    world = r.surface(0.0) @ rot.T + trans
    assert world[..., 2].min() < 0 < world[..., 2].max()  # the case: part of the sheet is behind the lens
    assert r._grip_pixels(r.surface(0.0), rot, trans) == []  # no hand drawn from behind the camera
    frame = r.frame()
    assert frame.shape == (480, 640, 3) and _red_rows(frame) > 0  # the eye line is still on the sheet


def test_a_failing_sequence_keeps_the_ones_before_it(tmp_path, capsys, monkeypatch):
    import blinkgate.simulate as sim

    photos = [str(shared("faces", "lfw65", "Hugh_Grant"))]
    real = sim.make_sequence

    def third_fails(loader, pool, index, *args, **kwargs):
        if index == 2:
            raise ValueError("renderer bug")
        return real(loader, pool, index, *args, **kwargs)

    monkeypatch.setattr(sim, "make_sequence", third_fails)
    out = tmp_path / "o"
    code = main(["simulate-attack", *photos, "--count", "4", "--duration", "0.3", "-q", "--out", str(out), "--seed", "3"])
    assert code == 2
    assert f"sim-s3-0002 failed (ValueError: renderer bug); the 2 sequences before it are in {out / 'manifest.csv'}" \
        in capsys.readouterr().err
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert [r["id"] for r in rows] == ["sim-s3-0000", "sim-s3-0001"]
    assert "2 sequences of 4 planned (stopped early)" in (out / "README.txt").read_text()


def test_a_photo_whose_name_is_not_utf8_is_skipped_not_handed_to_opencv(tmp_path, monkeypatch):
    """cv2.imread on its name crashed simulate-attack (a segfault, exit 139, nothing printed)."""
    import os

    from blinkgate.sources import not_utf8

    latin1 = tmp_path / os.fsdecode(b"ob\xe9.jpg")
    try:
        latin1.write_bytes(next(shared("faces", "lfw65", "Hugh_Grant").glob("*.jpg")).read_bytes())
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    real = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda name, *a: pytest.fail("segfault") if not_utf8(name) else real(name, *a))
    assert PhotoLoader().load(latin1) is None


def test_an_out_folder_of_an_earlier_run_is_refused(tmp_path, capsys):
    """A second run (another seed) into the same --out replaced the first run's manifest.csv and
    params.jsonl, and left its videos unlisted among the new ones."""
    photos = [str(shared("faces", "lfw65", "Hugh_Grant"))]
    args = [*photos, "--count", "1", "--duration", "0.3", "-q", "--out", str(tmp_path)]
    assert main(["simulate-attack", *args, "--seed", "1"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main(["simulate-attack", *args, "--seed", "2"]) == 2
    assert "already holds a simulate-attack run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("name", ["params.jsonl", "README.txt"])
def test_an_out_folder_with_a_folder_where_a_run_file_goes_is_refused_before_any_work(tmp_path, capsys, monkeypatch, name):
    """An IsADirectoryError traceback after every sequence was made, with no manifest for them."""
    import blinkgate.simulate as sim

    monkeypatch.setattr(sim, "_job", lambda *a: pytest.fail("rendered before --out was checked"))
    (tmp_path / name).mkdir()
    photos = [str(shared("faces", "lfw65", "Hugh_Grant"))]
    assert main(["simulate-attack", *photos, "--count", "1", "-q", "--out", str(tmp_path)]) == 2
    assert f"the run's {name} goes in {tmp_path / name}, a folder" in capsys.readouterr().err


def test_a_sequence_stopped_half_way_leaves_no_video(tmp_path, monkeypatch):
    """Ctrl-C while a sequence was written left it as a shorter but valid video among the
    finished ones, under the name of a finished one."""
    import blinkgate.simulate as sim

    real = sim.render_sequence

    def interrupted(photo, params, words):
        frames = real(photo, params, words)
        yield next(frames)
        if words[2] == 1:
            raise KeyboardInterrupt
        yield from frames

    monkeypatch.setattr(sim, "render_sequence", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate([shared("faces", "lfw65", "Hugh_Grant")], tmp_path, seed=3, count=3, duration=0.3)
    assert sorted(p.name for p in tmp_path.iterdir() if ".avi" in p.name) == ["sim-s3-0000.avi"]
    assert [r["id"] for r in csv.DictReader((tmp_path / "manifest.csv").open())] == ["sim-s3-0000"]
    assert "1 sequences of 3 planned (stopped early)" in (tmp_path / "README.txt").read_text()


def test_the_partial_videos_of_stopped_workers_are_removed(tmp_path, monkeypatch):
    """A worker process ended by Ctrl-C (terminated) cannot remove its own partial video."""
    import blinkgate.simulate as sim

    def killed(loader, pool, index, kind, seed, out, duration):
        (out / f".sim-s{seed}-{index:04d}.partial.avi").write_bytes(b"half a video")
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "make_sequence", killed)
    with pytest.raises(KeyboardInterrupt):
        simulate([shared("faces", "lfw65", "Hugh_Grant")], tmp_path, seed=3, count=2)
    assert list(tmp_path.iterdir()) == []


def test_simulate_attack_is_reproducible(tmp_path, capsys):
    photos = [str(shared("faces", "lfw65", "Hugh_Grant")), str(shared("photo-attack", "nuaa", "ClientRaw", "0004"))]
    args = [*photos, "--count", "3", "--duration", "1.0", "-q"]
    assert main(["simulate-attack", *args, "--out", str(tmp_path / "a"), "--seed", "11"]) == 0
    assert "3 SIMULATED attack sequences" in capsys.readouterr().out
    simulate(photos, tmp_path / "b", seed=11, count=3, duration=1.0)
    simulate(photos, tmp_path / "c", seed=12, count=3, duration=1.0)
    a = sorted((tmp_path / "a").glob("*.avi"))
    assert [f.name for f in a] == ["sim-s11-0000.avi", "sim-s11-0001.avi", "sim-s11-0002.avi"]
    assert all(f.read_bytes() == (tmp_path / "b" / f.name).read_bytes() for f in a)
    assert (tmp_path / "a" / "params.jsonl").read_text() == (tmp_path / "b" / "params.jsonl").read_text()
    assert a[0].read_bytes() != (tmp_path / "c" / "sim-s12-0000.avi").read_bytes()
    rows = list(csv.DictReader((tmp_path / "a" / "manifest.csv").open()))
    assert [r["label"] for r in rows] == list(KINDS) and all(r["simulated"] == "true" for r in rows)
    assert all("SIMULATED" in r["note"] for r in rows)
    inputs = load_manifest(tmp_path / "a" / "manifest.csv")
    assert all(p.simulated and p.attack for p in inputs)
    cap = cv2.VideoCapture(str(a[0]))
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 640, 3)
    assert "SIMULATED" in (tmp_path / "a" / "README.txt").read_text()


def test_sequences_of_one_kind_from_one_pool_differ(tmp_path):
    """Each sequence is drawn from (seed, index): without the index every print of a run was the
    same video."""
    rows = simulate([str(shared("faces", "lfw65", "Hugh_Grant"))], tmp_path, seed=11, count=2,
                    kinds=["print"], duration=0.2)
    assert json.dumps(rows[0]["params"]) != json.dumps(rows[1]["params"])
    assert (tmp_path / "sim-s11-0000.avi").read_bytes() != (tmp_path / "sim-s11-0001.avi").read_bytes()


def test_simulate_attack_errors(tmp_path, capsys):
    assert main(["simulate-attack", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such photo" in capsys.readouterr().err
    photo = shared("faces", "lfw65", "Hugh_Grant")
    assert main(["simulate-attack", str(photo), "--out", str(tmp_path / "o"), "--kinds", "print,mask"]) == 2
    assert "unknown attack kind" in capsys.readouterr().err


@pytest.fixture(scope="module")
def seeded_attacks(tmp_path_factory):
    """42 seeded 3-second sequences (14 of each kind) from the shared photos, and their outcomes."""
    photos = [str(shared("faces")), str(shared("photo-attack", "nuaa", "ClientRaw"))]
    out = tmp_path_factory.mktemp("sim")
    simulate(photos, out, seed=2024, count=42, duration=3.0)
    inputs = load_manifest(out / "manifest.csv")
    return evaluate(inputs, lambda: make_pipeline("blinkgate", None, {}, None))


@pytest.mark.slow
def test_simulated_attacks_show_the_gate_a_face(seeded_attacks):
    """The attacks are presentations the gate actually sees (else rejecting them proves nothing)."""
    frames = sum(o.frames for o in seeded_attacks)
    assert len(seeded_attacks) == 42 and frames >= 42 * 3 * 15
    assert sum(o.face_frames for o in seeded_attacks) / frames > 0.8
    assert sum(o.open_frames for o in seeded_attacks) / sum(o.face_frames for o in seeded_attacks) > 0.5


@pytest.mark.slow
def test_every_simulated_attack_is_rejected(seeded_attacks):
    s = summarise(seeded_attacks)["accepted"]["simulated_attacks"]
    accepted = {label: row["accepted_ids"] for label, row in s.items() if row["accepted"]}
    assert not accepted, f"simulated attacks accepted: {accepted}"


# Sequences of the 510-sequence run (seed 0, docs/evaluation.md) that the gate accepted before
# it checked the eye aspect ratio and fold creases: pleats and folds over the eyes, and bent
# prints of blurry eyes behind glasses. 509, a pleat beside a glasses rim that also flickers shut
# for one frame at 30 fps, got through those checks and is stopped by the line-by-line crease
# rule and the minimum blink length.
ONCE_ACCEPTED = {2: "pleat/sine", 17: "fold/sine", 26: "pleat/pulses", 89: "pleat/pulses",
                 224: "pleat/sine", 277: "vfold/static", 289: "vfold/sine", 454: "cylinder-v/sine",
                 509: "pleat/pulses"}
# The held-out seed-3 run (folded and bent prints only): 45, a blurry V-fold whose lids never
# came far enough together, is stopped by the blink-depth rule (BlinkOptions.blink_ear_ratio).
ONCE_ACCEPTED_SEED3 = {45: "vfold/sine"}
# The held-out seed-4 run (all kinds): 53, a flexing pleat whose shadow crosses a dark room
# beside the face, is stopped since fold.crease_lines also marks ridges in log intensity; 116,
# a pale pleat, got through a version that marked them in log intensity only.
ONCE_ACCEPTED_SEED4 = {53: "pleat/sine", 116: "pleat/pulses"}
# The held-out seed-5 run (all kinds): 149, a flexing pleat whose line was gone on the one
# closed frame, is stopped since a crease that falls voids a closure (BlinkOptions.crease_change).
ONCE_ACCEPTED_SEED5 = {149: "pleat/sine"}
# The held-out seed-6 run (all kinds): 136, a blurred print flexing at 25 fps whose eyes read
# closed on single frames, is stopped by the eye-sharpness floor (BlinkOptions.min_sharpness).
ONCE_ACCEPTED_SEED6 = {136: "cylinder-v/sine"}


@pytest.mark.slow
def test_folded_prints_that_once_passed_are_rejected(tmp_path):
    pools = find_photos([shared("faces"), shared("photo-attack", "nuaa", "ClientRaw")])
    loader = PhotoLoader()
    runs = [(0, KINDS, ONCE_ACCEPTED), (3, ["folded-print", "bent-print"], ONCE_ACCEPTED_SEED3),
            (4, KINDS, ONCE_ACCEPTED_SEED4), (5, KINDS, ONCE_ACCEPTED_SEED5), (6, KINDS, ONCE_ACCEPTED_SEED6)]
    rows = [make_sequence(loader, pools[i % len(pools)], i, kinds[i % len(kinds)], seed, tmp_path)
            for seed, kinds, once in runs for i in once]
    # the very sequences of those runs
    assert [r["variant"] for r in rows] == [v for _, _, once in runs for v in once.values()]
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "source", "fps", "group", "simulated", "identity"])
        writer.writerows([r["id"], r["label"], r["source"], r["fps"], "simulated", "true", r["identity"]] for r in rows)
    outcomes = evaluate(load_manifest(tmp_path / "manifest.csv"), lambda: make_pipeline("blinkgate", None, {}, None))
    assert all(o.error is None for o in outcomes)
    assert sum(o.face_frames for o in outcomes) / sum(o.frames for o in outcomes) > 0.8  # the gate saw faces
    assert [o.id for o in outcomes if o.accepted] == []


def test_a_photo_without_a_face_is_named_not_fifty_draws_from_its_folder(tmp_path, capsys):
    """One photo given said "no usable face in 50 photos drawn from ." (its folder, the draws)."""
    wall = np.full((200, 200, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "wall.jpg"), wall)
    (tmp_path / "walls" / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / "walls" / "sub" / name), wall)
    assert main(["simulate-attack", str(tmp_path / "wall.jpg"), "--out", str(tmp_path / "o1"), "-q"]) == 2
    assert capsys.readouterr().err == f"blinkgate: error: no usable face in {tmp_path / 'wall.jpg'}\n"
    assert main(["simulate-attack", str(tmp_path / "walls"), "--out", str(tmp_path / "o2"), "-q"]) == 2
    assert capsys.readouterr().err == f"blinkgate: error: no usable face in 2 of the 2 photos under {tmp_path / 'walls' / 'sub'}\n"
