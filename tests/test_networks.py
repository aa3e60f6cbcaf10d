"""The table of networks: building from config sections, lowering choice,
what checkpoints and exports record, and older records still loading."""

import pytest

from a2v_jax import base_config
from a2v_jax import export
from a2v_jax import networks


def test_every_model_section_has_a_network():
  sections = set(base_config.get_config().model.keys()) - {'perceptual'}
  assert sections == set(networks.NETWORKS)


@pytest.mark.parametrize('backend,lowering', [('cpu', 'tuned'),
                                              ('gpu', 'xla'), ('tpu', 'xla')])
def test_auto_lowering_is_chosen_when_built(backend, lowering):
  for section in ('generator', 'frame_d', 'temporal_d'):
    module = networks.build(section, {}, backend=backend)
    assert module.conv_lowering == lowering
    assert networks.build(section, {'conv_lowering': 'stride1_2d'},
                          backend=backend).conv_lowering == 'stride1_2d'


def test_records_keep_the_configs_lowering():
  assert networks.network_config('generator', {})['conv_lowering'] == 'auto'
  assert networks.network_config(
      'frame_d', {'conv_lowering': 'xla'})['conv_lowering'] == 'xla'
  assert 'conv_lowering' not in networks.network_config('ds2', {})


def test_an_older_generator_record_still_builds():
  old = networks.network_config('generator', dict(ngf=2, spade_hidden=4))
  old['matmul_kernel_grad'] = False  # recorded before the option was retired
  generator = export.create_generator(old)
  assert generator.ngf == 2 and generator.conv_lowering in ('tuned', 'xla')
  with pytest.raises(export.ExportError):
    export.create_generator({**old, 'matmul_kernel_grad': True})
