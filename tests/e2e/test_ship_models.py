"""Shipping from MLflow: each job logs the fine-tuned pruned model's forms as MLflow models (and the dense
model once per sweep and model), recovery is metric history, `sweep.cli.register` registers the best at
each cost behind a gate, and `mlflow models serve` answers as the job's model does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import FAST, run_cli
from helpers.runs import EXPERIMENT
from helpers.runtimes import needs_deploy
from helpers.servers import serving
from sweep import tracking

pytestmark = [needs_deploy, pytest.mark.slow]

SWEEP = "ship"
FORMS = ["onnx", "onnx_int8", "pytorch"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, weights_cache, empty_store):
    """Three jobs of tiny_cnn at MACs 0.5 (two structural methods and a mask), fine-tuned 2 epochs,
    INT8 in ONNX Runtime, every form logged and the safetensors form saved beside them."""
    folder = tmp_path_factory.mktemp("ship")
    store = empty_store(folder / "mlflow.db")
    done = run_cli(
        [
            "-m",
            "model=tiny_cnn",
            "pruner=dg_group,dg_random,l1_unstructured",
            "target.macs=0.5",
            "finetune.epochs=2",
            "measure.runtimes=[eager,onnxruntime]",
            "quantize=int8",
            "quantize.runtimes=[onnxruntime]",
            "quantize.calibration_samples=16",
            "measure.profile=false",
            "save_model=true",
            f"sweep_id={SWEEP}",
            f"tracking.uri={store}",
            *[a for a in FAST if not a.startswith("log_models")],
            f"log_models=[{','.join(FORMS)}]",
        ],
        folder,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, store


def _client(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(store)


def _runs(store) -> dict:
    return {r.info.run_name: r for r in tracking.search_runs(store, EXPERIMENT, SWEEP)}


def _models(store, run_id: str) -> dict:
    exp = _client(store).get_experiment_by_name(EXPERIMENT).experiment_id
    found = tracking.logged_models_of(store, exp, f"source_run_id = '{run_id}'")
    return {m.name: m for m in found}


def _example(store, model) -> np.ndarray:
    """The logged model's input example: two eval images through the job's preprocessing."""
    import mlflow

    mlflow.set_tracking_uri(store)
    path = mlflow.artifacts.download_artifacts(f"{model.artifact_location}/input_example.json")
    return np.asarray(json.loads(Path(path).read_text()), dtype=np.float32)


def _eager(store, run) -> np.ndarray:
    """What the job's fine-tuned model answers: its `model/` safetensors form, in PyTorch."""
    import torch

    from sweep.models import artifacts

    folder = _client(store).download_artifacts(run.info.run_id, tracking.MODEL_ARTIFACT_DIR)
    return lambda x: artifacts.load(folder)(torch.from_numpy(x)).detach().numpy()


def _onnx(path: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_every_job_logs_its_fine_tuned_forms_and_the_sweep_its_dense_model_once(shipped):
    import mlflow

    _, store = shipped
    runs = _runs(store)
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    dense = []
    for name, run in runs.items():
        models = _models(store, run.info.run_id)
        pruned = {n for n in models if n.startswith("pruned-")}
        assert pruned == {f"pruned-{f}" for f in FORMS}, name
        assert run.data.tags[tracking.TAG_SHIPPED] == ",".join(FORMS)
        onnx = models["pruned-onnx"]
        assert onnx.tags["model"] == "tiny_cnn" and onnx.tags["cost"] == "macs=0.5"
        for form in FORMS:  # the run's own figures, never another value under a run's name
            carried = {m.key: m.value for m in models[f"pruned-{form}"].metrics}
            assert carried[tracking.ACCURACY] == run.data.metrics[tracking.ACCURACY], form
            assert 0 < carried[tracking.MACS_KEPT] <= 1 and tracking.SPEEDUP in carried
            masks = "l1_unstructured" in name  # no speedup to measure in ONNX Runtime
            assert ("onnxruntime/speedup" in carried) != masks
        dense += [n for n in models if n.startswith("dense-")]
    assert sorted(dense) == sorted(f"dense-{f}" for f in FORMS)  # once for the sweep's model
    # what ships is the fine-tuned model, in every form; what was timed is apart, before fine-tuning
    run = runs["tiny_cnn/dg_group/macs=0.5"]
    models = _models(store, run.info.run_id)
    x = _example(store, models["pruned-onnx"])
    want = _eager(store, run)(x)
    mlflow.set_tracking_uri(store)
    for form in ("onnx", "pytorch"):
        got = mlflow.pyfunc.load_model(f"models:/{models[f'pruned-{form}'].model_id}").predict(x)
        got = np.asarray(got["output"] if isinstance(got, dict) else got)
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=form)
    int8 = mlflow.pyfunc.load_model(f"models:/{models['pruned-onnx_int8'].model_id}").predict(x)
    assert (np.asarray(int8["output"]).argmax(1) == want.argmax(1)).mean() >= 0.5
    arts = _client(store).list_artifacts(run.info.run_id, tracking.MODEL_ARTIFACT_DIR)
    assert "pruned.onnx" not in {Path(a.path).name for a in arts}
    timed = _client(store).download_artifacts(run.info.run_id, "timed/pruned.onnx")
    timed_out = _onnx(timed, np.repeat(x[:1], _timed_batch(timed), axis=0))[:1]
    assert np.abs(timed_out - want[:1]).max() > 1e-3  # the weights before fine-tuning


def _timed_batch(path: str) -> int:
    """The timed file's batch size (fixed at measure.batch_size: what was timed)."""
    import onnx

    return onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_value


def test_recovery_is_metric_history_from_one_shot_to_fine_tuned(shipped):
    _, store = shipped
    run = _runs(store)["tiny_cnn/dg_group/macs=0.5"]
    m, client = run.data.metrics, _client(store)
    top1 = sorted(
        (h.step, h.value) for h in client.get_metric_history(run.info.run_id, "finetune_top1")
    )
    loss = client.get_metric_history(run.info.run_id, "finetune_loss")
    steps = int(m[tracking.FINETUNE_STEPS])
    # one-shot, after epoch 1 (finetune.eval_every=1), after the last epoch
    assert [s for s, _ in top1] == [0, steps // 2, steps]
    assert top1[0][1] == m[tracking.ACCURACY_ONESHOT] and top1[-1][1] == m[tracking.ACCURACY]
    assert 1 < len(loss) <= 51 and max(h.step for h in loss) == steps


def _register(store, *args) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "sweep.cli.register", "--tracking-uri", store, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


def _versions(store) -> list:
    return _client(store).search_model_versions("name='test_resnet-pruned'")


def test_register_the_best_at_each_cost_once_behind_a_gate(shipped):
    _, store = shipped
    runs = _runs(store)
    rc, out, err = _register(store, "--sweep-id", SWEEP, "--runtime", "onnxruntime")
    assert rc == 0, err
    best = max(
        (runs[f"tiny_cnn/{p}/macs=0.5"] for p in ("dg_group", "dg_random")),
        key=lambda r: (r.data.metrics["accuracy_top1"], r.data.metrics["onnxruntime/speedup"]),
    )
    client = _client(store)
    registered = client.get_registered_model("test_resnet-pruned")
    aliases = {a: v for a, v in registered.aliases.items()}
    passed = [f for f in ("", "-int8", "-pytorch") if f"@macs50{f}" in out]
    assert "@macs50" in out and "@macs50-pytorch" in out, out
    for suffix in passed:
        version = client.get_model_version("test_resnet-pruned", aliases[f"macs50{suffix}"])
        assert version.run_id == best.info.run_id
        assert version.tags["method"] == best.data.params["pruner"]
        assert version.tags["sweep_id"] == SWEEP and "speedup/onnxruntime" in version.tags
    count = len(_versions(store))
    rc, out, _ = _register(store, "--sweep-id", SWEEP, "--runtime", "onnxruntime")
    assert rc == 0 and "already registered" in out and len(_versions(store)) == count
    # bad input: one line, exit 2, nothing registered
    for args, said in (
        (
            ["--cost", "macs=0.9"],
            "--cost=macs=0.9 is not a cost level of sweep ship: choose from macs=0.5",
        ),
        (["--runtime", "openvino"], "--runtime=openvino: no run of sweep ship was timed in it"),
        (["--sweep-id", "nope"], "sweep nope: no finished run to register from"),
    ):
        rc, out, err = _register(store, "--sweep-id", SWEEP, *args)
        assert rc == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert len(_versions(store)) == count


def test_register_through_a_tracking_server(shipped):
    folder, store = shipped
    with serving(store, folder) as http:
        rc, out, err = _register(http, "--sweep-id", SWEEP)
    assert rc == 0, err
    assert "registered test_resnet-pruned" in out


def test_the_gate_refuses_a_model_too_far_below_dense():
    from sweep.cli import register

    class Run:
        class info:
            run_id, run_name, experiment_id = "r", "tiny_cnn/dg_group/macs=0.5", "1"

        class data:
            params = {"pruner": "dg_group", "model_name": "test_resnet"}
            tags = {}
            metrics = {"accuracy_top1": 0.80, "dense_accuracy_top1": 0.90}

    c = register.Candidate(model="test_resnet", cost="macs=0.5", run=Run)
    assert register.gate(c, "onnx", 0.2) == ""
    assert register.gate(c, "onnx", 0.05) == (
        "top-1 80.0 % is 10.0 points below dense 90.0 % (--max-top1-drop=0.05)"
    )
    assert "no top-1 of the onnx_int8 form" in register.gate(c, "onnx_int8", 0.5)
    assert register.alias_of("macs=0.5", "onnx_int8") == "macs50-int8"
    assert register.alias_of("0.3", "pytorch") == "ratio30-pytorch"
    assert register.alias_of("speedup=1.5", "onnx") == "speedup1_5x"


def test_a_registered_model_serves_what_the_job_predicted(shipped, tmp_path):
    """`mlflow models serve` on the registered alias, on a free loopback port: the classes it answers
    for the input example's images are the fine-tuned model's."""
    from sweep.cli.server import free_port

    _, store = shipped
    rc, _, err = _register(store, "--sweep-id", SWEEP)
    assert rc == 0, err
    version = _client(store).get_model_version_by_alias("test_resnet-pruned", "macs50")
    run = _client(store).get_run(version.run_id)
    x = _example(store, _models(store, run.info.run_id)["pruned-onnx"])
    want = _eager(store, run)(x)
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=store)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        "models:/test_resnet-pruned@macs50",
    ]
    cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(f"{url}/ping", proc, tmp_path / "serve.log")
        body = json.dumps({"inputs": x.tolist()}).encode()
        request = urllib.request.Request(
            f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            got = np.asarray(json.loads(answer.read())["predictions"]["output"])
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    assert got.shape == want.shape
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_allclose(got, want, atol=1e-4)


def _wait_for(url: str, proc, log: Path, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"no answer from {url} in {timeout:g} s: {log.read_text()[-3000:]}")
