"""Tests for keras_export.py (numpy + h5py only; no TensorFlow/Keras needed).

Each test writes Keras files with h5py exactly as Keras lays them out (see the
module docstring of keras_export.py for the sources), converts them, and reads
the result back with safetensors_io.read_safetensors.

Usage:
    /usr/bin/python3 model/keras_export_test.py        # exits non-zero on failure
    /usr/bin/python3 model/keras_export_test.py -v     # one line per test
"""

import dataclasses
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
