"""Tests for keras_export.py (numpy + h5py only; no TensorFlow/Keras needed).

Each test writes Keras files with h5py exactly as Keras lays them out (see the
module docstring of keras_export.py for the sources), converts them, and reads
the result back with safetensors_io.read_safetensors.

Usage:
    /usr/bin/python3 model/keras_export_test.py        # exits non-zero on failure
    /usr/bin/python3 model/keras_export_test.py -v     # one line per test
"""

import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import keras_export  # noqa: E402
from keras_export import ExportError  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

OUTPUT_NAMES = ["simple_rnn/kernel", "simple_rnn/recurrent_kernel", "simple_rnn/bias",
                "dense/kernel", "dense/bias"]
TUTORIAL = dict(C=100, H=50, O=10, T=20)
SMALL = dict(C=3, H=4, O=2, T=5)

KERAS2_MODEL = "keras2-h5-model"
KERAS2_WEIGHTS = "keras2-h5-weights"
KERAS3_WEIGHTS = "keras3-weights-h5"
KERAS3_ARCHIVE = "keras3-keras-archive"
LAYOUTS = [KERAS2_MODEL, KERAS2_WEIGHTS, KERAS3_WEIGHTS, KERAS3_ARCHIVE]
WITH_CONFIG = [KERAS2_MODEL, KERAS3_ARCHIVE]
WEIGHTS_ONLY = [KERAS2_WEIGHTS, KERAS3_WEIGHTS]
FILE_NAMES = {KERAS2_MODEL: "m.h5", KERAS2_WEIGHTS: "w.h5", KERAS3_WEIGHTS: "x.weights.h5",
              KERAS3_ARCHIVE: "m.keras"}


@dataclasses.dataclass
class LayerSpec:
    """A layer to write: Keras class, name, config (without name), and weights
    [(role, array)] in Keras' order; `cell` is the RNN cell scope, if any."""

    class_name: str
    name: str
    config: dict
    weights: list
    cell: str = None


@dataclasses.dataclass
class ModelSpec:
    """A Sequential model to write; T=None means input_shape=(None, C)."""

    layers: list
    T: int
    C: int


def rnn_config(units, **overrides):
    """A tf.keras 2.x SimpleRNN config (minus name), as get_config() writes it."""
    config = {
        "return_sequences": False, "return_state": False, "go_backwards": False,
        "stateful": False, "unroll": False, "time_major": False, "units": units,
        "activation": "relu", "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "recurrent_initializer": {"class_name": "Orthogonal",
                                  "config": {"gain": 1.0, "seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
        "activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
        "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0,
    }
    config.update(overrides)
    return config


def dense_config(units, **overrides):
    """A tf.keras 2.x Dense config (minus name)."""
    config = {
        "units": units, "activation": "softmax", "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
        "kernel_constraint": None, "bias_constraint": None,
    }
    config.update(overrides)
    return config


def tutorial_model(C, H, O, T, seed=0, dtype=np.float32, rnn_name="simple_rnn",
                   dense_name="dense"):
    """Returns (ModelSpec of SimpleRNN(H, relu) -> Dense(O, softmax) with random
    weights, {output tensor name: the array written})."""
    rng = np.random.default_rng(seed)
    shapes = {"simple_rnn/kernel": (C, H), "simple_rnn/recurrent_kernel": (H, H),
              "simple_rnn/bias": (H,), "dense/kernel": (H, O), "dense/bias": (O,)}
    w = {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}
    rnn = LayerSpec("SimpleRNN", rnn_name, rnn_config(H),
                    [(role, w[f"simple_rnn/{role}"]) for role in
                     ("kernel", "recurrent_kernel", "bias")], cell="simple_rnn_cell")
    dense = LayerSpec("Dense", dense_name, dense_config(O),
                      [(role, w[f"dense/{role}"]) for role in ("kernel", "bias")])
    return ModelSpec([rnn, dense], T=T, C=C), w


def lstm_layer(name, C, H, seed=1):
    """An LSTM layer spec with random weights (kernel [C,4H], recurrent [H,4H], bias [4H])."""
    rng = np.random.default_rng(seed)
    return LayerSpec("LSTM", name, rnn_config(H, activation="tanh"),
                     [("kernel", rng.standard_normal((C, 4 * H)).astype(np.float32)),
                      ("recurrent_kernel", rng.standard_normal((H, 4 * H)).astype(np.float32)),
                      ("bias", rng.standard_normal(4 * H).astype(np.float32))], cell="lstm_cell")


def set_weight(layer, role, array):
    """Replaces (or, with array None, removes) `layer`'s weight `role`."""
    layer.weights = [(r, array if r == role else a) for r, a in layer.weights
                     if r != role or array is not None]


def keras2_model_config(model, list_style=False):
    """The model_config JSON object tf.keras 2.x writes for a Sequential model
    (list_style: Keras 2.0-2.1, a bare layer list without InputLayer)."""
    shape = [None, model.T, model.C]
    layers = []
    for i, layer in enumerate(model.layers):
        config = {"name": layer.name, "trainable": True, "dtype": "float32"}
        if i == 0:
            config["batch_input_shape"] = shape
        config.update(layer.config)
        layers.append({"class_name": layer.class_name, "config": config})
    if list_style:
        return {"class_name": "Sequential", "config": layers}
    input_layer = {"class_name": "InputLayer", "config": {
        "batch_input_shape": shape, "dtype": "float32", "sparse": False, "ragged": False,
        "name": f"{model.layers[0].name}_input"}}
    return {"class_name": "Sequential", "config": {"name": "sequential",
                                                     "layers": [input_layer] + layers}}


def keras2_weight_name(layer, role, cell_scoped):
    """A weight's name as tf.keras saves it (cell_scoped=False: Keras 2.0-2.2)."""
    if layer.cell and cell_scoped:
        return f"{layer.name}/{layer.cell}/{role}:0"
    return f"{layer.name}/{role}:0"


def write_keras2_weights(group, model, cell_scoped=True, chunk_layer_names=False):
    """Writes save_weights_to_hdf5_group's layout into `group`."""
    names = np.array([layer.name.encode("utf8") for layer in model.layers])
    if chunk_layer_names:  # what save_attributes_to_hdf5_group does for over-long lists
        for i, chunk in enumerate(np.array_split(names, 2)):
            group.attrs[f"layer_names{i}"] = chunk
    else:
        group.attrs["layer_names"] = names
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.13.1"
    for layer in sorted(model.layers, key=lambda l: l.name):
        g = group.create_group(layer.name)
        weight_names = [keras2_weight_name(layer, role, cell_scoped).encode("utf8")
                        for role, _ in layer.weights]
        g.attrs["weight_names"] = weight_names
        for name, (_, array) in zip(weight_names, layer.weights):
            g.create_dataset(name.decode("utf8"), data=array)
    group.create_group("top_level_model_weights").attrs["weight_names"] = []


def write_keras2_model(path, model, **kwargs):
    """Writes a tf.keras 2.x `model.save('m.h5')` file (with optimizer state)."""
    list_style = kwargs.pop("list_style", False)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.13.1"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(keras2_model_config(model, list_style)).encode("utf8")
        f.attrs["training_config"] = json.dumps({"loss": "categorical_crossentropy"}).encode()
        write_keras2_weights(f.create_group("model_weights"), model, **kwargs)
        opt = f.create_group("optimizer_weights")
        opt.attrs["weight_names"] = [b"Adam/iter:0"]
        opt.create_dataset("Adam/iter:0", data=np.int64(42))


def write_keras2_weights_file(path, model, **kwargs):
    """Writes a tf.keras 2.x `model.save_weights('w.h5')` file."""
    with h5py.File(path, "w") as f:
        write_keras2_weights(f, model, **kwargs)


def keras3_keys(model):
    """The group names Keras 3 gives the model's layers (snake_case class + counter)."""
    counts, keys = {}, []
    for layer in model.layers:
        key = keras_export.snake_case(layer.class_name)
        counts[key] = counts.get(key, -1) + 1
        keys.append(f"{key}_{counts[key]}" if counts[key] else key)
    return keys


def write_keras3_weights(h5, model, root="layers", keys=None):
    """Writes the Keras 3 saving_lib layout (H5IOStore) into the open file `h5`."""
    h5.create_group("vars")
    for layer, key in zip(model.layers, keys or keras3_keys(model)):
        group = h5.create_group(f"{root}/{key}")
        if layer.cell:
            group.create_group("vars")  # the RNN layer's own variables: none
            group = group.create_group("cell")
        variables = group.create_group("vars")
        variables.attrs["name"] = layer.name
        for i, (_, array) in enumerate(layer.weights):
            variables.create_dataset(str(i), data=array)
    optimizer = h5.create_group("optimizer/vars")
    optimizer.create_dataset("0", data=np.int64(42))
    optimizer.create_dataset("1", data=np.ones(3, np.float32))


def write_keras3_weights_file(path, model, **kwargs):
    """Writes a Keras 3 `model.save_weights('x.weights.h5')` file."""
    with h5py.File(path, "w") as h5:
        write_keras3_weights(h5, model, **kwargs)


def keras3_model_config(model, input_layer=True):
    """The config.json object Keras 3 writes for a Sequential model."""
    shape = [None, model.T, model.C]
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
              "registered_name": None}
    layers = []
    if input_layer:
        layers.append({"module": "keras.layers", "class_name": "InputLayer", "config": {
            "batch_shape": shape, "dtype": "float32", "sparse": False, "name": "input_layer"},
            "registered_name": None})
    layer_shape = shape
    for layer in model.layers:
        config = {"name": layer.name, "trainable": True, "dtype": policy}
        config.update({k: v for k, v in layer.config.items() if k != "time_major"})
        layers.append({"module": "keras.layers", "class_name": layer.class_name,
                       "config": config, "registered_name": None,
                       "build_config": {"input_shape": layer_shape}})
        if "units" in layer.config:
            layer_shape = [None, layer.config["units"]]
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "sequential", "trainable": True, "dtype": policy,
                       "layers": layers},
            "registered_name": None, "build_config": {"input_shape": shape},
            "compile_config": {"optimizer": "adam", "loss": "categorical_crossentropy"}}


def write_keras_archive(path, model, **kwargs):
    """Writes a Keras 3 `model.save('m.keras')` zip archive."""
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        write_keras3_weights(h5, model)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0",
                                                      "date_saved": "2024-09-01@12:00:00"}))
        archive.writestr("config.json", json.dumps(keras3_model_config(model, **kwargs)))
        archive.writestr("model.weights.h5", weights.getvalue())


WRITERS = {KERAS2_MODEL: write_keras2_model, KERAS2_WEIGHTS: write_keras2_weights_file,
           KERAS3_WEIGHTS: write_keras3_weights_file, KERAS3_ARCHIVE: write_keras_archive}


class ExportTestCase(unittest.TestCase):
    """Temporary directory and conversion helpers."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def write(self, layout, model, **kwargs):
        """Writes `model` in `layout` to a fresh file; returns its path."""
        path = os.path.join(self.dir, f"{len(os.listdir(self.dir))}-{FILE_NAMES[layout]}")
        WRITERS[layout](path, model, **kwargs)
        return path

    def convert(self, path, sequence_length=None):
        """Converts `path`; returns (tensors, metadata) read back from the output, log lines."""
        output = path + ".safetensors"
        log = []
        keras_export.convert(path, output, sequence_length, log=log.append)
        return read_safetensors(output), log

    def assertTensorsEqual(self, tensors, expected):
        """The five tensors, F32, bit-identical to `expected` (cast to float32)."""
        self.assertEqual(sorted(tensors), sorted(OUTPUT_NAMES))
        for name in OUTPUT_NAMES:
            want = expected[name].astype(np.float32)
            self.assertEqual(tensors[name].dtype, np.dtype("<f4"), name)
            self.assertEqual(tensors[name].shape, want.shape, name)
            np.testing.assert_array_equal(tensors[name].view(np.uint32), want.view(np.uint32),
                                          err_msg=name)

    def assertRefused(self, path, *patterns, sequence_length=None):
        """Conversion raises ExportError matching every regex; no output is written."""
        output = path + ".safetensors"
        with self.assertRaises(ExportError) as caught:
            keras_export.convert(path, output, sequence_length, log=lambda _: None)
        for pattern in patterns:
            self.assertRegex(str(caught.exception), pattern)
        self.assertFalse(os.path.exists(output))


class ConvertTest(ExportTestCase):
    """Successful conversions."""

    def check_layouts(self, dims, **names):
        """Converts a random model of `dims` in each layout and checks the output."""
        for layout in LAYOUTS:
            with self.subTest(layout=layout):
                model, expected = tutorial_model(dims["C"], dims["H"], dims["O"], dims["T"],
                                                 seed=len(layout), **names)
                path = self.write(layout, model)
                (tensors, metadata), log = self.convert(path)
                self.assertTensorsEqual(tensors, expected)
                self.assertEqual(metadata["converted_by"], "model/keras_export.py")
                self.assertEqual(metadata["source"], os.path.basename(path))
                self.assertEqual(metadata["source_format"], layout)
                if layout in WITH_CONFIG:
                    self.assertEqual(metadata["sequence_length"], str(dims["T"]))
                    self.assertEqual(log, [])
                else:
                    self.assertNotIn("sequence_length", metadata)
                    self.assertTrue(any("relu" in m and "softmax" in m for m in log), log)
                    self.assertTrue(any("assumes 20" in m for m in log), log)

    def test_tutorial_shape_every_layout(self):
        self.check_layouts(TUTORIAL)

    def test_small_shape_suffixed_names_every_layout(self):
        self.check_layouts(SMALL, rnn_name="simple_rnn_3", dense_name="dense_7")

    def test_keras2_old_weight_names_and_list_config(self):
        model, expected = tutorial_model(**SMALL, rnn_name="simple_rnn_1", dense_name="dense_1")
        path = self.write(KERAS2_MODEL, model, cell_scoped=False, list_style=True)
        (tensors, metadata), _ = self.convert(path)
        self.assertTensorsEqual(tensors, expected)
        self.assertEqual(metadata["sequence_length"], "5")

    def test_keras2_weights_only_old_names_inferred_from_shapes(self):
        model, expected = tutorial_model(**SMALL, rnn_name="rnn", dense_name="out")
        path = self.write(KERAS2_WEIGHTS, model, cell_scoped=False)
        (tensors, _), _ = self.convert(path)
        self.assertTensorsEqual(tensors, expected)

    def test_keras2_chunked_layer_names(self):
        model, expected = tutorial_model(**SMALL)
        for layout in (KERAS2_MODEL, KERAS2_WEIGHTS):
            with self.subTest(layout=layout):
                (tensors, _), _ = self.convert(self.write(layout, model, chunk_layer_names=True))
                self.assertTensorsEqual(tensors, expected)

    def test_keras3_suffixed_groups_and_keras_2_13_root(self):
        model, expected = tutorial_model(**SMALL)
        path = self.write(KERAS3_WEIGHTS, model, root="_layer_checkpoint_dependencies",
                          keys=["simple_rnn_1", "dense_2"])
        (tensors, _), _ = self.convert(path)
        self.assertTensorsEqual(tensors, expected)

    def test_keras3_archive_without_input_layer_uses_build_config(self):
        model, expected = tutorial_model(**SMALL)
        (tensors, metadata), _ = self.convert(self.write(KERAS3_ARCHIVE, model, input_layer=False))
        self.assertTensorsEqual(tensors, expected)
        self.assertEqual(metadata["sequence_length"], "5")

    def test_keras3_activation_as_serialized_function(self):
        model, expected = tutorial_model(**SMALL)
        for layer, name in zip(model.layers, ("relu", "softmax")):
            layer.config["activation"] = {"module": "keras.activations", "class_name": "function",
                                          "config": name, "registered_name": "function"}
        (tensors, _), _ = self.convert(self.write(KERAS3_ARCHIVE, model))
        self.assertTensorsEqual(tensors, expected)

    def test_inert_layers_and_dropout_settings_are_ignored(self):
        model, expected = tutorial_model(**SMALL)
        model.layers[0].config.update(dropout=0.3, recurrent_dropout=0.2)
        model.layers.insert(1, LayerSpec("Dropout", "dropout", {"rate": 0.5}, []))
        for layout in LAYOUTS:
            with self.subTest(layout=layout):
                (tensors, _), _ = self.convert(self.write(layout, model))
                self.assertTensorsEqual(tensors, expected)

    def test_unknown_sequence_length_in_config(self):
        model, expected = tutorial_model(**dict(SMALL, T=None))
        for layout in WITH_CONFIG:
            with self.subTest(layout=layout):
                (tensors, metadata), log = self.convert(self.write(layout, model))
                self.assertTensorsEqual(tensors, expected)
                self.assertNotIn("sequence_length", metadata)
                self.assertTrue(any("assumes 20" in m for m in log), log)

    def test_sequence_length_option(self):
        model, _ = tutorial_model(**SMALL)
        for layout in LAYOUTS:
            with self.subTest(layout=layout):
                (_, metadata), _ = self.convert(self.write(layout, model), sequence_length=5)
                self.assertEqual(metadata["sequence_length"], "5")
        unknown, _ = tutorial_model(**dict(SMALL, T=None))
        (_, metadata), _ = self.convert(self.write(KERAS2_MODEL, unknown), sequence_length=9)
        self.assertEqual(metadata["sequence_length"], "9")

    def test_float64_weights_are_cast_with_a_note(self):
        model, expected = tutorial_model(**SMALL, dtype=np.float64)
        (tensors, _), log = self.convert(self.write(KERAS2_MODEL, model))
        self.assertTensorsEqual(tensors, expected)
        self.assertTrue(any("float64" in m for m in log), log)

    def test_float16_weights_are_widened_exactly(self):
        model, expected = tutorial_model(**SMALL, dtype=np.float16)
        (tensors, _), log = self.convert(self.write(KERAS3_WEIGHTS, model))
        self.assertTensorsEqual(tensors, expected)
        self.assertFalse(any("precision" in m for m in log), log)


class CommandLineTest(ExportTestCase):
    """The script run as a program."""

    def run_cli(self, *args):
        """Runs keras_export.py with this interpreter; returns the CompletedProcess."""
        return subprocess.run([sys.executable, os.path.join(HERE, "keras_export.py"), *args],
                              capture_output=True, text=True, timeout=120)

    def test_converts(self):
        model, expected = tutorial_model(**TUTORIAL)
        path = self.write(KERAS2_MODEL, model)
        output = os.path.join(self.dir, "rnn.safetensors")
        result = self.run_cli(path, "-o", output)
        self.assertEqual(result.returncode, 0, result.stderr)
        tensors, metadata = read_safetensors(output)
        self.assertTensorsEqual(tensors, expected)
        self.assertEqual(metadata["sequence_length"], "20")
        self.assertIn("C=100 H=50 O=10", result.stdout)

    def test_weights_only_with_sequence_length(self):
        model, expected = tutorial_model(**SMALL)
        path = self.write(KERAS3_WEIGHTS, model)
        output = os.path.join(self.dir, "rnn.safetensors")
        result = self.run_cli(path, "-o", output, "--sequence-length", "5")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("keras_export: warning:", result.stderr)
        tensors, metadata = read_safetensors(output)
        self.assertTensorsEqual(tensors, expected)
        self.assertEqual(metadata["sequence_length"], "5")

    def test_refusal_exits_non_zero(self):
        model, _ = tutorial_model(**SMALL)
        model.layers[0].config["activation"] = "tanh"
        path = self.write(KERAS2_MODEL, model)
        output = os.path.join(self.dir, "rnn.safetensors")
        result = self.run_cli(path, "-o", output)
        self.assertEqual(result.returncode, 1)
        self.assertTrue(result.stderr.startswith("keras_export: error:"), result.stderr)
        self.assertIn("'tanh'", result.stderr)
        self.assertFalse(os.path.exists(output))


class RefusalTest(ExportTestCase):
    """Inputs that cannot be mapped onto the server's model."""

    def check(self, layouts, mutate, *patterns, **write_kwargs):
        """Mutates a small tutorial model, writes it in each layout, expects refusal."""
        for layout in layouts:
            with self.subTest(layout=layout):
                model, _ = tutorial_model(**SMALL)
                mutate(model)
                self.assertRefused(self.write(layout, model, **write_kwargs), *patterns)

    def test_extra_lstm_layer(self):
        self.check(LAYOUTS, lambda m: m.layers.insert(1, lstm_layer("lstm", 4, 4)),
                   r"(?i)weight-carrying layer 'lstm' \((LSTM|unrecognized)", r"\[4, 16\]")

    def test_lstm_instead_of_simple_rnn(self):
        def mutate(model):
            model.layers[0] = lstm_layer("lstm_2", 3, 4)
        self.check(LAYOUTS, mutate, r"(?i)'lstm(_2)?'", r"exactly one SimpleRNN layer, found 0")

    def test_gru_layer(self):
        def mutate(model):
            gru = lstm_layer("gru", 4, 4)
            gru.class_name, gru.cell = "GRU", "gru_cell"
            model.layers.insert(1, gru)
        self.check(LAYOUTS, mutate, r"(?i)'gru' \((GRU|unrecognized)")

    def test_second_dense(self):
        def mutate(model):
            rng = np.random.default_rng(5)
            model.layers.append(LayerSpec("Dense", "dense_1", dense_config(2), [
                ("kernel", rng.standard_normal((2, 2)).astype(np.float32)),
                ("bias", np.zeros(2, np.float32))]))
        self.check(LAYOUTS, mutate, r"exactly one Dense layer, found 2", r"dense_1")

    def test_no_dense(self):
        self.check(LAYOUTS, lambda m: m.layers.pop(), r"exactly one Dense layer, found 0")

    def test_simple_rnn_activation_not_relu(self):
        self.check(WITH_CONFIG, lambda m: m.layers[0].config.update(activation="tanh"),
                   r"SimpleRNN .* activation 'tanh'")

    def test_dense_activation_not_softmax(self):
        self.check(WITH_CONFIG, lambda m: m.layers[1].config.update(activation="linear"),
                   r"Dense .* activation 'linear'")

    def test_flags(self):
        for flag in ("return_sequences", "go_backwards", "stateful"):
            with self.subTest(flag=flag):
                self.check(WITH_CONFIG, lambda m: m.layers[0].config.update({flag: True}),
                           rf"{flag}=True")

    def test_use_bias_false(self):
        for index in (0, 1):
            def mutate(model):
                model.layers[index].config["use_bias"] = False
                set_weight(model.layers[index], "bias", None)
            with self.subTest(layer=index):
                self.check(WITH_CONFIG, mutate, r"use_bias=False; the server needs a bias")
                self.check(WEIGHTS_ONLY, mutate, r"no bias \(use_bias=False\?\)")

    def test_missing_weights(self):
        # Keras 2 names each weight, so one can be missing; Keras 3 numbers them
        # (a missing middle one is indistinguishable from use_bias=False), so
        # there the SimpleRNN's group is left without variables.
        self.check([KERAS2_MODEL, KERAS2_WEIGHTS],
                   lambda m: set_weight(m.layers[0], "recurrent_kernel", None),
                   r"missing weights \['recurrent_kernel'\]")
        self.check([KERAS3_WEIGHTS, KERAS3_ARCHIVE], lambda m: m.layers[0].weights.clear(),
                   r"missing weights \['kernel', 'recurrent_kernel'\]", r"no bias")

    def test_inconsistent_shapes(self):
        cases = {
            "recurrent": (0, "recurrent_kernel", (4, 5), r"simple_rnn/recurrent_kernel has shape "
                          r"\[4, 5\], expected \[4, 4\]"),
            "rnn bias": (0, "bias", (5,), r"simple_rnn/bias has shape \[5\], expected \[4\]"),
            "dense kernel": (1, "kernel", (5, 2), r"dense/kernel has shape \[5, 2\]"),
            "dense bias": (1, "bias", (3,), r"dense/bias has shape \[3\], expected \[2\]"),
        }
        for case, (index, role, shape, pattern) in cases.items():
            with self.subTest(case=case):
                self.check(LAYOUTS, lambda m: set_weight(m.layers[index], role,
                                                         np.ones(shape, np.float32)), pattern)

    def test_config_units_disagree_with_weights(self):
        self.check(WITH_CONFIG, lambda m: m.layers[0].config.update(units=7), r"units=7")

    def test_config_features_disagree_with_kernel(self):
        def mutate(model):
            model.C = 6
        self.check(WITH_CONFIG, mutate, r"6 features but simple_rnn/kernel has 3 rows")

    def test_integer_weights(self):
        self.check(LAYOUTS, lambda m: set_weight(m.layers[1], "kernel",
                                                 np.ones((4, 2), np.int32)), r"dtype int32")

    def test_nan_and_inf_weights(self):
        for value, pattern in ((np.nan, r"1 NaN and 0 infinite"), (np.inf, r"0 NaN and 1 inf")):
            def mutate(model):
                bias = np.zeros(4, np.float32)
                bias[2] = value
                set_weight(model.layers[0], "bias", bias)
            with self.subTest(value=value):
                self.check(LAYOUTS, mutate, pattern)

    def test_float64_overflowing_float32(self):
        def mutate(model):
            set_weight(model.layers[1], "bias", np.array([1e300, 0.0]))
        self.check(LAYOUTS, mutate, r"infinite values \(as float32\)")

    def test_unsupported_weightless_layer(self):
        self.check(WITH_CONFIG, lambda m: m.layers.append(
            LayerSpec("Activation", "activation", {"activation": "relu"}, [])),
            r"'activation' \(Activation\) changes the computation")

    def test_dense_before_simple_rnn(self):
        self.check([KERAS2_MODEL], lambda m: m.layers.reverse(), r"comes before SimpleRNN")

    def test_sequence_length_conflict_and_range(self):
        model, _ = tutorial_model(**SMALL)
        path = self.write(KERAS2_MODEL, model)
        self.assertRefused(path, r"--sequence-length 6 conflicts .* \(5 time steps\)",
                           sequence_length=6)
        weights_only = self.write(KERAS2_WEIGHTS, model)
        self.assertRefused(weights_only, r"sequence length 0 is outside", sequence_length=0)

    def test_keras3_model_level_variables(self):
        model, _ = tutorial_model(**SMALL)
        path = self.write(KERAS3_WEIGHTS, model)
        with h5py.File(path, "a") as h5:
            h5["vars"].create_dataset("0", data=np.ones(3, np.float32))
        self.assertRefused(path, r"model-level variables")

    def test_unexpected_variable_in_simple_rnn_group(self):
        model, _ = tutorial_model(**SMALL)
        path = self.write(KERAS3_WEIGHTS, model)
        with h5py.File(path, "a") as h5:
            h5["layers/simple_rnn/vars"].create_dataset("0", data=np.zeros((1, 4), np.float32))
        self.assertRefused(path, r"no place for: \['simple_rnn/vars/0'\]")

    def test_not_a_keras_file(self):
        junk = os.path.join(self.dir, "junk.h5")
        with open(junk, "wb") as f:
            f.write(b"not hdf5 at all")
        self.assertRefused(junk, r"neither an HDF5 file nor a \.keras")
        empty_h5 = os.path.join(self.dir, "empty.h5")
        with h5py.File(empty_h5, "w") as h5:
            h5.create_dataset("x", data=np.zeros(3))
        self.assertRefused(empty_h5, r"no Keras layout")
        other_zip = os.path.join(self.dir, "other.keras")
        with zipfile.ZipFile(other_zip, "w") as archive:
            archive.writestr("readme.txt", "hi")
        self.assertRefused(other_zip, r"config\.json and model\.weights\.h5")
        self.assertRefused(os.path.join(self.dir, "missing.h5"), r"no such file")


# ---------------------------------------------------------------------------
# Fixtures in the layouts real Keras writes.
#
# The writers above follow the exporter's own description of the layouts; the
# builders below follow Keras' saving code itself, function by function, each
# citing the repository, path and function it mirrors. They also write what the
# exporter ignores (optimizer state, training config, version attributes), with
# the attribute types Keras uses, so that a misreading of the layouts shared by
# the exporter and its docstring would show up here.
# ---------------------------------------------------------------------------

TESTLIB_PATH = os.path.join(HERE, os.pardir, "tests", "testlib.py")


def load_testlib():
    """Imports tests/testlib.py (numpy_forward) by path."""
    spec = importlib.util.spec_from_file_location("rnn_server_testlib", TESTLIB_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass
class RealModel:
    """`Sequential([SimpleRNN(H, activation="relu", input_shape=(T, C)),
    Dense(O, activation="softmax")])` with random float32 weights (`arrays`,
    keyed by the exporter's output names).

    The names are those Keras gives: `model_name`, `rnn_name`, `dense_name` are
    the auto-generated layer names ("sequential", "simple_rnn", "dense" in a
    fresh session; "sequential_2", "simple_rnn_1", "dense_3" after other models
    were built). `cell_scope` is the TF name scope of the SimpleRNN cell's
    variables in tf.keras 2.x: the cell is always named "simple_rnn_cell"
    (SimpleRNN.__init__), but TF makes the scope unique within the graph, so
    later models get "simple_rnn_cell_1", ... (real files show e.g.
    `lstm_1/lstm_1/lstm_cell_1/kernel:0` and
    `SimpleRNN/SimpleRNN/simple_rnn_cell_10/kernel:0`). Keras 3 scopes are not
    made unique, so Keras 3 paths always use "simple_rnn_cell".
    """

    C: int
    H: int
    O: int
    T: int
    model_name: str = "sequential"
    rnn_name: str = "simple_rnn"
    dense_name: str = "dense"
    cell_scope: str = "simple_rnn_cell"
    seed: int = 0

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        shapes = {"simple_rnn/kernel": (self.C, self.H),
                  "simple_rnn/recurrent_kernel": (self.H, self.H),
                  "simple_rnn/bias": (self.H,), "dense/kernel": (self.H, self.O),
                  "dense/bias": (self.O,)}
        self.arrays = {name: (0.3 * rng.standard_normal(shape)).astype(np.float32)
                       for name, shape in shapes.items()}

    def rnn_weights(self):
        """The SimpleRNN's weights in creation order (SimpleRNNCell.build)."""
        return [(role, self.arrays[f"simple_rnn/{role}"])
                for role in ("kernel", "recurrent_kernel", "bias")]

    def dense_weights(self):
        """The Dense layer's weights in creation order (Dense.build)."""
        return [(role, self.arrays[f"dense/{role}"]) for role in ("kernel", "bias")]


def fresh_session_model():
    """The tutorial model as saved from a fresh session: default names, H=50."""
    return RealModel(**TUTORIAL)


def numbered_names_model():
    """A model built after others: auto-numbered names. C == H, so a kernel /
    recurrent_kernel mix-up is not caught by the shape checks alone."""
    return RealModel(C=6, H=6, O=3, T=7, model_name="sequential_2", rnn_name="simple_rnn_1",
                     dense_name="dense_3", cell_scope="simple_rnn_cell_1", seed=1)


# --- tf.keras 2.x (keras-team/tf-keras) -------------------------------------

def tf_keras_layer_weights(m):
    """[(layer name, [(weight name, array)])] in `model.layers` order, the
    weight names being the TF variable names `w.name` tf.keras stores.

    keras-team/tf-keras tf_keras/layers/rnn/simple_rnn.py (SimpleRNN.__init__
    names the cell "simple_rnn_cell"; SimpleRNNCell.build adds "kernel",
    "recurrent_kernel", "bias" in that order) and
    tf_keras/layers/rnn/base_rnn.py (RNN.build builds the cell under
    `backend.name_scope(self.cell.name)`, inside the layer's own scope):
    `<layer>/<cell scope>/kernel:0`. Dense: `<layer>/kernel:0`, `<layer>/bias:0`.
    """
    rnn = [(f"{m.rnn_name}/{m.cell_scope}/{role}:0", a) for role, a in m.rnn_weights()]
    dense = [(f"{m.dense_name}/{role}:0", a) for role, a in m.dense_weights()]
    return [(m.rnn_name, rnn), (m.dense_name, dense)]


def tf_keras_model_config(m):
    """The `model_config` object tf.keras 2.x writes for the Sequential model:
    {"class_name": model.__class__.__name__, "config": model.get_config()}.

    keras-team/tf-keras tf_keras/saving/legacy/saving_utils.py (model_metadata);
    tf_keras/engine/sequential.py (Sequential.get_config: legacy serialization
    of `super().layers`, which include the InputLayer that Sequential.add
    creates, named `layer.name + "_input"`); SimpleRNN.get_config and
    RNN.get_config (return_sequences ... time_major, units, activation, ...).
    """
    shape = [None, m.T, m.C]
    rnn = {"name": m.rnn_name, "trainable": True, "dtype": "float32",
           "batch_input_shape": shape, "return_sequences": False, "return_state": False,
           "go_backwards": False, "stateful": False, "unroll": False, "time_major": False,
           "units": m.H, "activation": "relu", "use_bias": True,
           "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
           "recurrent_initializer": {"class_name": "Orthogonal",
                                     "config": {"gain": 1.0, "seed": None}},
           "bias_initializer": {"class_name": "Zeros", "config": {}},
           "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
           "activity_regularizer": None, "kernel_constraint": None,
           "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
           "recurrent_dropout": 0.0}
    dense = {"name": m.dense_name, "trainable": True, "dtype": "float32", "units": m.O,
             "activation": "softmax", "use_bias": True,
             "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
             "bias_initializer": {"class_name": "Zeros", "config": {}},
             "kernel_regularizer": None, "bias_regularizer": None,
             "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    input_layer = {"batch_input_shape": shape, "dtype": "float32", "sparse": False,
                   "ragged": False, "name": f"{m.rnn_name}_input"}
    return {"class_name": "Sequential", "config": {"name": m.model_name, "layers": [
        {"class_name": "InputLayer", "config": input_layer},
        {"class_name": "SimpleRNN", "config": rnn},
        {"class_name": "Dense", "config": dense}]}}


def h5_save_subset_weights(group, weights):
    """save_subset_weights_to_hdf5_group (keras-team/tf-keras
    tf_keras/saving/legacy/hdf5_format.py; the same function in keras-team/keras
    keras/src/legacy/saving/legacy_h5_format.py): attribute `weight_names`
    (utf-8 bytes, via save_attributes_to_hdf5_group, which stores a short list
    as given: [] becomes an empty float64 array), then one dataset per weight at
    the path given by its name, relative to the layer group."""
    weight_names = [name.encode("utf8") for name, _ in weights]
    group.attrs["weight_names"] = weight_names
    for name, (_, value) in zip(weight_names, weights):
        dataset = group.create_dataset(name, value.shape, dtype=value.dtype)
        if not value.shape:
            dataset[()] = value
        else:
            dataset[:] = value


def h5_save_weights_group(group, layers, backend, keras_version):
    """save_weights_to_hdf5_group (keras-team/tf-keras
    tf_keras/saving/legacy/hdf5_format.py; keras-team/keras
    keras/src/legacy/saving/legacy_h5_format.py): `layer_names` (model.layers
    order, InputLayer excluded by Sequential.layers), `backend` and
    `keras_version` as utf-8 bytes, one group per layer created in name order,
    and `top_level_model_weights` (the model's own weights: none)."""
    group.attrs["layer_names"] = [name.encode("utf8") for name, _ in layers]
    group.attrs["backend"] = backend.encode("utf8")
    group.attrs["keras_version"] = keras_version.encode("utf8")
    for name, weights in sorted(layers, key=lambda layer: layer[0]):
        h5_save_subset_weights(group.create_group(name), weights)
    h5_save_subset_weights(group.create_group("top_level_model_weights"), [])


def h5_save_model_metadata(f, metadata):
    """save_model_to_hdf5's attribute loop: dicts as JSON utf-8 bytes, other
    values (keras_version, backend: str) as they are."""
    for key, value in metadata.items():
        if isinstance(value, (dict, list, tuple)):
            f.attrs[key] = json.dumps(value).encode("utf8")
        else:
            f.attrs[key] = value


def write_tf_keras_h5_model(path, m, keras_version="2.10.0", compiled=True):
    """tf.keras 2.x `model.save('m.h5')`: keras-team/tf-keras
    tf_keras/saving/legacy/hdf5_format.py (save_model_to_hdf5,
    save_weights_to_hdf5_group, save_optimizer_weights_to_hdf5_group) and
    tf_keras/saving/legacy/saving_utils.py (model_metadata: keras_version,
    backend, model_config and, once compiled, training_config). Datasets land at
    `model_weights/simple_rnn/simple_rnn/simple_rnn_cell/kernel:0`, ...,
    `model_weights/dense/dense/kernel:0`. The optimizer state is that of the
    tf.keras <= 2.10 (optimizer_v2) Adam: `Adam/iter:0`, then the "m" slots of
    every weight, then the "v" slots, named `Adam/<variable>/m:0`."""
    layers = tf_keras_layer_weights(m)
    metadata = {"keras_version": keras_version, "backend": "tensorflow",
                "model_config": tf_keras_model_config(m)}
    if compiled:
        metadata["training_config"] = {
            "loss": "categorical_crossentropy",
            "metrics": [[{"class_name": "MeanMetricWrapper", "config": {
                "name": "accuracy", "dtype": "float32", "fn": "categorical_accuracy"}}]],
            "weighted_metrics": None, "loss_weights": None,
            "optimizer_config": {"class_name": "Adam", "config": {
                "name": "Adam", "learning_rate": 0.001, "decay": 0.0, "beta_1": 0.9,
                "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}}}
    with h5py.File(path, "w") as f:
        h5_save_model_metadata(f, metadata)
        h5_save_weights_group(f.create_group("model_weights"), layers, "tensorflow",
                              keras_version)
        if compiled:
            variables = [(name[:-len(":0")], a) for _, weights in layers for name, a in weights]
            slots = [(f"Adam/{name}/{slot}:0", np.zeros_like(a))
                     for slot in ("m", "v") for name, a in variables]
            h5_save_subset_weights(f.create_group("optimizer_weights"),
                                   [("Adam/iter:0", np.int64(1200))] + slots)


def write_tf_keras_h5_weights(path, m, keras_version="2.15.0"):
    """tf.keras 2.x `model.save_weights('w.h5')`: keras-team/tf-keras
    tf_keras/saving/legacy/save.py (save_weights, h5 branch:
    `hdf5_format.save_weights_to_hdf5_group(f, model)` on the file itself), so
    the `model_weights` structure sits at the root and there is no config."""
    with h5py.File(path, "w") as f:
        h5_save_weights_group(f, tf_keras_layer_weights(m), "tensorflow", keras_version)


# --- Keras 3 (keras-team/keras) ---------------------------------------------

def keras3_dtype_policy():
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
            "registered_name": None}


def keras3_initializer(class_name, **config):
    return {"module": "keras.initializers", "class_name": class_name, "config": config,
            "registered_name": None}


def keras3_layer_configs(m):
    """(InputLayer, SimpleRNN, Dense) get_config() dicts of Keras 3:
    keras-team/keras keras/src/layers/rnn/simple_rnn.py (SimpleRNN.get_config),
    keras/src/layers/rnn/rnn.py (RNN.get_config: return_sequences, ...,
    zero_output_for_mask; no time_major in Keras 3),
    keras/src/layers/core/dense.py, keras/src/layers/core/input_layer.py. The
    InputLayer is the one Sequential adds for `input_shape=` (auto-named)."""
    input_layer = {"batch_shape": [None, m.T, m.C], "dtype": "float32", "sparse": False,
                   "name": "input_layer" if m.model_name == "sequential" else "input_layer_2"}
    rnn = {"name": m.rnn_name, "trainable": True, "dtype": keras3_dtype_policy(),
           "return_sequences": False, "return_state": False, "go_backwards": False,
           "stateful": False, "unroll": False, "zero_output_for_mask": False, "units": m.H,
           "activation": "relu", "use_bias": True,
           "kernel_initializer": keras3_initializer("GlorotUniform", seed=None),
           "recurrent_initializer": keras3_initializer("Orthogonal", gain=1.0, seed=None),
           "bias_initializer": keras3_initializer("Zeros"), "kernel_regularizer": None,
           "recurrent_regularizer": None, "bias_regularizer": None,
           "activity_regularizer": None, "kernel_constraint": None,
           "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
           "recurrent_dropout": 0.0, "seed": None}
    dense = {"name": m.dense_name, "trainable": True, "dtype": keras3_dtype_policy(),
             "units": m.O, "activation": "softmax", "use_bias": True,
             "kernel_initializer": keras3_initializer("GlorotUniform", seed=None),
             "bias_initializer": keras3_initializer("Zeros"), "kernel_regularizer": None,
             "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    return input_layer, rnn, dense


def keras3_variable_paths(m):
    """[(layer name, [(w.path, array)])]: Keras 3 variable paths are the name
    scopes at creation, `<model>/<layer>/<cell>/<weight>` without ":0" and never
    made unique (keras-team/keras keras/src/backend/common/variables.py
    Variable.path; Layer.add_weight opens the layer's name scope)."""
    rnn = [(f"{m.model_name}/{m.rnn_name}/simple_rnn_cell/{role}", a)
           for role, a in m.rnn_weights()]
    dense = [(f"{m.model_name}/{m.dense_name}/{role}", a) for role, a in m.dense_weights()]
    return [(m.rnn_name, rnn), (m.dense_name, dense)]


def write_keras3_legacy_h5_model(path, m, keras_version="3.6.0"):
    """Keras 3 `model.save('m.h5')` (legacy format, uncompiled model):
    keras-team/keras keras/src/legacy/saving/legacy_h5_format.py
    (save_model_to_hdf5 under `keras_option_scope(use_legacy_config=True)`,
    save_weights_to_hdf5_group, save_subset_weights_to_hdf5_group with
    `weight_names = [str(w.path).encode("utf8")]`),
    keras/src/legacy/saving/saving_utils.py (model_metadata) and
    keras/src/legacy/saving/serialization.py (serialize_keras_object:
    {"class_name", "config"}); keras/src/models/sequential.py
    (Sequential.get_config adds `build_input_shape`)."""
    input_layer, rnn, dense = keras3_layer_configs(m)
    model_config = {"class_name": "Sequential", "config": {
        "name": m.model_name, "trainable": True, "dtype": keras3_dtype_policy(),
        "layers": [{"class_name": "InputLayer", "config": input_layer},
                   {"class_name": "SimpleRNN", "config": rnn},
                   {"class_name": "Dense", "config": dense}],
        "build_input_shape": [None, m.T, m.C]}}
    with h5py.File(path, "w") as f:
        h5_save_model_metadata(f, {"keras_version": keras_version, "backend": "tensorflow",
                                   "model_config": model_config})
        h5_save_weights_group(f.create_group("model_weights"), keras3_variable_paths(m),
                              "tensorflow", keras_version)


def write_keras3_weights_store(h5, m, name_attrs=True):
    """What saving_lib._save_state writes into an H5IOStore for the model
    (keras-team/keras keras/src/saving/saving_lib.py: _save_state,
    _walk_saveable, _save_container_state, H5IOStore.make/_create_h5_group, or
    H5Entry in older 3.x):

    - every saveable with save_own_variables gets a group `<inner path>/vars`
      holding its variables as datasets "0", "1", ... (keras/src/layers/layer.py
      Layer.save_own_variables: `_trainable_variables +
      _non_trainable_variables`); recent versions pass {"name": saveable.name}
      as metadata, stored as an attribute of that `vars` group (`name_attrs`);
    - the model itself: root `vars` (no own variables);
    - Sequential/Functional yield "layers" first; the list is saved by class,
      `to_snake_case(class name)` plus a counter for repeats, so the groups are
      `layers/simple_rnn` and `layers/dense` whatever the layer names are;
    - the SimpleRNN has no own variables (`layers/simple_rnn/vars` is empty);
      its `cell` attribute is the SimpleRNNCell:
      `layers/simple_rnn/cell/vars/{0: kernel, 1: recurrent_kernel, 2: bias}`
      (keras/src/layers/rnn/simple_rnn.py SimpleRNNCell.build);
    - Dense: `layers/dense/vars/{0: kernel, 1: bias}`;
    - then the model's other attributes in sorted order: the optimizer's
      variables at `optimizer/vars` (Adam: iteration, learning_rate, then
      momentum/velocity per model variable). Metrics and losses have no
      save_own_variables and get no group.
    """
    def vars_group(path, name):
        group = h5.create_group(f"{path}/vars" if path else "vars")
        if name_attrs:
            group.attrs["name"] = name
        return group

    vars_group("", m.model_name)
    vars_group("layers/simple_rnn", m.rnn_name)
    cell = vars_group("layers/simple_rnn/cell", "simple_rnn_cell")
    for i, (_, array) in enumerate(m.rnn_weights()):
        cell[str(i)] = array
    dense = vars_group("layers/dense", m.dense_name)
    for i, (_, array) in enumerate(m.dense_weights()):
        dense[str(i)] = array
    optimizer = vars_group("optimizer", "adam")
    optimizer["0"] = np.int64(1200)
    optimizer["1"] = np.float32(0.001)
    for i, (_, array) in enumerate(m.rnn_weights() + m.dense_weights()):
        optimizer[str(2 + 2 * i)] = np.zeros_like(array)
        optimizer[str(3 + 2 * i)] = np.zeros_like(array)


def write_keras3_weights_h5(path, m, name_attrs=True):
    """Keras 3 `model.save_weights('x.weights.h5')`: keras-team/keras
    keras/src/saving/saving_lib.py (save_weights_only: an H5IOStore on the file,
    then _save_state(model, inner_path=""))."""
    with h5py.File(path, "w") as h5:
        write_keras3_weights_store(h5, m, name_attrs)


def keras3_archive_config(m):
    """config.json of Keras 3 `model.save('m.keras')`: keras-team/keras
    keras/src/saving/serialization_lib.py (serialize_keras_object: module,
    class_name, config, registered_name, build_config, compile_config) and
    keras/src/models/sequential.py (Sequential.get_config: the layers including
    the InputLayer, and build_input_shape)."""
    input_layer, rnn, dense = keras3_layer_configs(m)

    def layer(class_name, config, input_shape=None):
        entry = {"module": "keras.layers", "class_name": class_name, "config": config,
                 "registered_name": None}
        if input_shape is not None:
            entry["build_config"] = {"input_shape": input_shape}
        return entry

    shape = [None, m.T, m.C]
    return {
        "module": "keras", "class_name": "Sequential",
        "config": {"name": m.model_name, "trainable": True, "dtype": keras3_dtype_policy(),
                   "layers": [layer("InputLayer", input_layer),
                              layer("SimpleRNN", rnn, shape),
                              layer("Dense", dense, [None, m.H])],
                   "build_input_shape": shape},
        "registered_name": None, "build_config": {"input_shape": shape},
        "compile_config": {
            "optimizer": {"module": "keras.optimizers", "class_name": "Adam", "config": {
                "name": "adam", "learning_rate": 0.001, "weight_decay": None,
                "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                "loss_scale_factor": None, "gradient_accumulation_steps": None,
                "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False},
                "registered_name": None},
            "loss": "categorical_crossentropy", "loss_weights": None,
            "metrics": ["accuracy"], "weighted_metrics": None, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}}


def write_keras3_archive(path, m, name_attrs=True, keras_version="3.6.0"):
    """Keras 3 `model.save('m.keras')`: keras-team/keras
    keras/src/saving/saving_lib.py (_save_model_to_fileobj: a zip with
    metadata.json {keras_version, date_saved}, config.json, then
    model.weights.h5 written by H5IOStore(archive=zf) via writestr on close;
    the empty assets directory adds no entry)."""
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        write_keras3_weights_store(h5, m, name_attrs)
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("metadata.json", "w") as f:
            f.write(json.dumps({"keras_version": keras_version,
                                "date_saved": "2024-10-03@14:21:07"}).encode())
        with archive.open("config.json", "w") as f:
            f.write(json.dumps(keras3_archive_config(m)).encode())
        archive.writestr("model.weights.h5", weights.getvalue())


@dataclasses.dataclass
class RealFixture:
    """One real-Keras layout: a writer(path, model), its file name, the
    exporter's expected source_format, and whether it records a model config
    (and so the sequence length)."""

    label: str
    writer: object
    file_name: str
    source_format: str
    has_config: bool


REAL_FIXTURES = [
    RealFixture("tf.keras 2.x model.save('m.h5')", write_tf_keras_h5_model, "m.h5",
                KERAS2_MODEL, True),
    RealFixture("tf.keras 2.x model.save('m.h5'), not compiled",
                lambda path, m: write_tf_keras_h5_model(path, m, "2.15.0", compiled=False),
                "m.h5", KERAS2_MODEL, True),
    RealFixture("tf.keras 2.x model.save_weights('w.h5')", write_tf_keras_h5_weights, "w.h5",
                KERAS2_WEIGHTS, False),
    RealFixture("Keras 3 model.save('m.h5') (legacy h5)", write_keras3_legacy_h5_model,
                "m.h5", KERAS2_MODEL, True),
    RealFixture("Keras 3 model.save_weights('x.weights.h5')", write_keras3_weights_h5,
                "x.weights.h5", KERAS3_WEIGHTS, False),
    RealFixture("Keras 3.0-3.x model.save_weights('x.weights.h5'), no name attributes",
                lambda path, m: write_keras3_weights_h5(path, m, name_attrs=False),
                "x.weights.h5", KERAS3_WEIGHTS, False),
    RealFixture("Keras 3 model.save('m.keras')", write_keras3_archive, "m.keras",
                KERAS3_ARCHIVE, True),
    RealFixture("Keras 3.0-3.x model.save('m.keras'), no name attributes",
                lambda path, m: write_keras3_archive(path, m, name_attrs=False,
                                                     keras_version="3.1.1"),
                "m.keras", KERAS3_ARCHIVE, True),
]


def h5_tree(h5):
    """{path: shape} of every dataset and {path: sorted attribute names} of every
    object with attributes, for layout assertions."""
    datasets, attributes = {}, {}
    if h5.attrs:
        attributes["/"] = sorted(h5.attrs)

    def visit(path, obj):
        if isinstance(obj, h5py.Dataset):
            datasets[path] = obj.shape
        if obj.attrs:
            attributes[path] = sorted(obj.attrs)

    h5.visititems(visit)
    return datasets, attributes


class RealKerasLayoutTest(ExportTestCase):
    """Conversions of files laid out exactly as real Keras writes them."""

    @classmethod
    def setUpClass(cls):
        cls.testlib = load_testlib()

    def export(self, fixture, model):
        """Writes `model` with `fixture`; returns (path, (tensors, metadata), log)."""
        path = os.path.join(self.dir, f"{len(os.listdir(self.dir))}-{fixture.file_name}")
        fixture.writer(path, model)
        (tensors, metadata), log = self.convert(path)
        return path, (tensors, metadata), log

    def assertForwardEqual(self, tensors, model):
        """numpy_forward on the exported tensors equals it on the fixture's arrays."""
        x = np.random.default_rng(11).standard_normal((5, model.T, model.C)).astype(np.float32)
        want = self.testlib.numpy_forward(model.arrays, x)
        got = self.testlib.numpy_forward(tensors, x)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(want.sum(axis=1), 1.0, rtol=1e-12)

    def check(self, fixture, model):
        path, (tensors, metadata), log = self.export(fixture, model)
        self.assertTensorsEqual(tensors, model.arrays)
        self.assertForwardEqual(tensors, model)
        self.assertEqual(metadata["source_format"], fixture.source_format)
        self.assertEqual(metadata["source"], os.path.basename(path))
        if fixture.has_config:
            self.assertEqual(metadata["sequence_length"], str(model.T))
            self.assertEqual(log, [])
        else:
            self.assertNotIn("sequence_length", metadata)
            self.assertTrue(any("weights-only" in m for m in log), log)

    def test_fresh_session_names(self):
        for fixture in REAL_FIXTURES:
            with self.subTest(fixture=fixture.label):
                self.check(fixture, fresh_session_model())

    def test_auto_numbered_names(self):
        for fixture in REAL_FIXTURES:
            with self.subTest(fixture=fixture.label):
                self.check(fixture, numbered_names_model())

    def test_command_line(self):
        for fixture in REAL_FIXTURES:
            with self.subTest(fixture=fixture.label):
                model = numbered_names_model()
                path = os.path.join(self.dir, f"{len(os.listdir(self.dir))}-{fixture.file_name}")
                fixture.writer(path, model)
                output = os.path.join(self.dir, "cli.safetensors")
                result = subprocess.run(
                    [sys.executable, os.path.join(HERE, "keras_export.py"), path, "-o", output],
                    capture_output=True, text=True, timeout=120)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn("C=6 H=6 O=3", result.stdout)
                tensors, metadata = read_safetensors(output)
                self.assertTensorsEqual(tensors, model.arrays)
                self.assertForwardEqual(tensors, model)
                self.assertEqual(metadata.get("sequence_length"),
                                 "7" if fixture.has_config else None)

    def test_tf_keras_weights_only_numbered_cell_scope_names_the_class(self):
        # A weights-only file from a session that built an earlier model: the
        # extra LSTM's weights are under `lstm_1/lstm_cell_1/`; it must be
        # reported as an LSTM, not as an unrecognized class.
        model = numbered_names_model()
        rng = np.random.default_rng(5)
        lstm = ("lstm_1", [(f"lstm_1/lstm_cell_1/{role}:0",
                            rng.standard_normal(shape).astype(np.float32))
                           for role, shape in (("kernel", (6, 24)), ("recurrent_kernel", (6, 24)),
                                               ("bias", (24,)))])
        layers = tf_keras_layer_weights(model)
        layers.insert(1, lstm)
        path = os.path.join(self.dir, "w.h5")
        with h5py.File(path, "w") as f:
            h5_save_weights_group(f, layers, "tensorflow", "2.15.0")
        self.assertRefused(path, r"weight-carrying layer 'lstm_1' \(LSTM; weights: "
                                 r"lstm_1/lstm_cell_1/kernel:0 \[6, 24\]")

    def test_tf_keras_weights_only_layers_named_like_cells(self):
        # Layer names are the first part of each weight name; only the parts
        # after it are cell scopes, so these names must not change the class.
        model = RealModel(C=5, H=4, O=3, T=6, rnn_name="encoder_cell", dense_name="output_cell")
        fixture = next(f for f in REAL_FIXTURES if f.source_format == KERAS2_WEIGHTS)
        _, (tensors, _), _ = self.export(fixture, model)
        self.assertTensorsEqual(tensors, model.arrays)
        self.assertForwardEqual(tensors, model)

    # The layouts themselves, spelled out (what the cited Keras code writes).

    def test_tf_keras_h5_model_layout(self):
        path = os.path.join(self.dir, "m.h5")
        write_tf_keras_h5_model(path, numbered_names_model())
        with h5py.File(path, "r") as h5:
            datasets, attributes = h5_tree(h5)
            self.assertEqual(h5.attrs["keras_version"], "2.10.0")
            self.assertEqual(json.loads(h5.attrs["model_config"])["class_name"],
                             "Sequential")
            # Keras assigns a Python list of bytes; h5py 3 stores it as variable-length
            # strings (read back as str), unlike the fixed-length np.array the
            # writers above use.
            self.assertEqual(h5["model_weights"].attrs["layer_names"].dtype, object)
            self.assertEqual(list(h5["model_weights"].attrs["layer_names"]),
                             ["simple_rnn_1", "dense_3"])
            self.assertEqual(list(h5["model_weights/simple_rnn_1"].attrs["weight_names"]), [
                "simple_rnn_1/simple_rnn_cell_1/kernel:0",
                "simple_rnn_1/simple_rnn_cell_1/recurrent_kernel:0",
                "simple_rnn_1/simple_rnn_cell_1/bias:0"])
            self.assertEqual(h5["model_weights/top_level_model_weights"].attrs["weight_names"]
                             .shape, (0,))
        model_weights = {p: s for p, s in datasets.items() if p.startswith("model_weights/")}
        self.assertEqual(model_weights, {
            "model_weights/simple_rnn_1/simple_rnn_1/simple_rnn_cell_1/kernel:0": (6, 6),
            "model_weights/simple_rnn_1/simple_rnn_1/simple_rnn_cell_1/recurrent_kernel:0":
                (6, 6),
            "model_weights/simple_rnn_1/simple_rnn_1/simple_rnn_cell_1/bias:0": (6,),
            "model_weights/dense_3/dense_3/kernel:0": (6, 3),
            "model_weights/dense_3/dense_3/bias:0": (3,)})
        self.assertIn("optimizer_weights/Adam/iter:0", datasets)
        self.assertEqual(attributes["/"], ["backend", "keras_version", "model_config",
                                           "training_config"])
        self.assertEqual(attributes["model_weights"], ["backend", "keras_version",
                                                       "layer_names"])

    def test_tf_keras_h5_weights_layout(self):
        path = os.path.join(self.dir, "w.h5")
        write_tf_keras_h5_weights(path, fresh_session_model())
        with h5py.File(path, "r") as h5:
            datasets, attributes = h5_tree(h5)
        self.assertEqual(datasets, {
            "simple_rnn/simple_rnn/simple_rnn_cell/kernel:0": (100, 50),
            "simple_rnn/simple_rnn/simple_rnn_cell/recurrent_kernel:0": (50, 50),
            "simple_rnn/simple_rnn/simple_rnn_cell/bias:0": (50,),
            "dense/dense/kernel:0": (50, 10), "dense/dense/bias:0": (10,)})
        self.assertEqual(attributes, {
            "/": ["backend", "keras_version", "layer_names"],
            "dense": ["weight_names"], "simple_rnn": ["weight_names"],
            "top_level_model_weights": ["weight_names"]})

    def test_keras3_legacy_h5_layout(self):
        path = os.path.join(self.dir, "m.h5")
        write_keras3_legacy_h5_model(path, numbered_names_model())
        with h5py.File(path, "r") as h5:
            datasets, _ = h5_tree(h5)
        self.assertEqual(sorted(datasets), [
            "model_weights/dense_3/sequential_2/dense_3/bias",
            "model_weights/dense_3/sequential_2/dense_3/kernel",
            "model_weights/simple_rnn_1/sequential_2/simple_rnn_1/simple_rnn_cell/bias",
            "model_weights/simple_rnn_1/sequential_2/simple_rnn_1/simple_rnn_cell/kernel",
            "model_weights/simple_rnn_1/sequential_2/simple_rnn_1/simple_rnn_cell/"
            "recurrent_kernel"])

    def test_keras3_weights_layout(self):
        model = numbered_names_model()
        for name_attrs in (True, False):
            with self.subTest(name_attrs=name_attrs):
                path = os.path.join(self.dir, f"{name_attrs}.weights.h5")
                write_keras3_weights_h5(path, model, name_attrs=name_attrs)
                with h5py.File(path, "r") as h5:
                    datasets, attributes = h5_tree(h5)
                    self.assertEqual(sorted(h5), ["layers", "optimizer", "vars"])
                    self.assertEqual(sorted(h5["layers"]), ["dense", "simple_rnn"])
                    self.assertEqual(len(h5["vars"]), 0)
                    self.assertEqual(len(h5["layers/simple_rnn/vars"]), 0)
                    if name_attrs:
                        self.assertEqual(h5["layers/simple_rnn/cell/vars"].attrs["name"],
                                         "simple_rnn_cell")
                        self.assertEqual(h5["layers/dense/vars"].attrs["name"], "dense_3")
                layer_datasets = {p: s for p, s in datasets.items() if p.startswith("layers/")}
                self.assertEqual(layer_datasets, {
                    "layers/simple_rnn/cell/vars/0": (6, 6),
                    "layers/simple_rnn/cell/vars/1": (6, 6),
                    "layers/simple_rnn/cell/vars/2": (6,),
                    "layers/dense/vars/0": (6, 3), "layers/dense/vars/1": (3,)})
                self.assertEqual(len([p for p in datasets if p.startswith("optimizer/vars/")]),
                                 12)
                self.assertEqual(bool(attributes), name_attrs)

    def test_keras3_archive_layout(self):
        path = os.path.join(self.dir, "m.keras")
        write_keras3_archive(path, fresh_session_model())
        with zipfile.ZipFile(path) as archive:
            self.assertEqual(archive.namelist(),
                             ["metadata.json", "config.json", "model.weights.h5"])
            metadata = json.loads(archive.read("metadata.json"))
            config = json.loads(archive.read("config.json"))
        self.assertEqual(sorted(metadata), ["date_saved", "keras_version"])
        self.assertEqual([layer["class_name"] for layer in config["config"]["layers"]],
                         ["InputLayer", "SimpleRNN", "Dense"])
        self.assertEqual(config["config"]["layers"][1]["build_config"],
                         {"input_shape": [None, 20, 100]})


class HelperTest(unittest.TestCase):
    """Small pieces whose behaviour the layouts depend on."""

    def test_snake_case_matches_keras_group_names(self):
        self.assertEqual([keras_export.snake_case(n) for n in
                          ("SimpleRNN", "Dense", "LSTM", "InputLayer", "GaussianNoise")],
                         ["simple_rnn", "dense", "lstm", "input_layer", "gaussian_noise"])

    def test_keras2_attribute_strings_are_bytes(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "w.h5")
            write_keras2_weights_file(path, tutorial_model(**SMALL)[0])
            with h5py.File(path, "r") as h5:
                self.assertIsInstance(h5.attrs["layer_names"][0], bytes)
                self.assertEqual(keras_export._string_list_attr(h5, "layer_names"),
                                 ["simple_rnn", "dense"])
                self.assertEqual(keras_export._string_list_attr(h5["top_level_model_weights"],
                                                                "weight_names"), [])


if __name__ == "__main__":
    unittest.main()
