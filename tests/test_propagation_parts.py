"""The parts of propagation: synthesis, guides, blending, the Poisson solve and the screen texture."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.synthetic import constant_flow, grained_clip, shifted_clip, textured


def test_pyramid_levels_follow_ebsynth(pack):
    sizes = pack.propagation.synthesis.pyramid_sizes(512, 640, levels=32, patch_size=5)
    assert sizes == [(16, 20), (32, 40), (64, 80), (128, 160), (256, 320), (512, 640)]
    assert pack.propagation.synthesis.pyramid_sizes(512, 512, levels=3, patch_size=5)[0] == (128, 128)


def test_nnf_doubling_keeps_sub_positions(pack):
    coarse = torch.randint(2, 6, (1, 2, 8, 8))   # source and target 8x8, as EbSynth's levels
    fine = pack.propagation.synthesis.resample_nnf(coarse, (16, 16), (16, 16), (8, 8))
    ys, xs = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    expected_x = 2 * coarse[0, 0][ys // 2, xs // 2] + xs % 2
    expected_y = 2 * coarse[0, 1][ys // 2, xs // 2] + ys % 2
    assert torch.equal(fine[0, 0], expected_x) and torch.equal(fine[0, 1], expected_y)


def synthesize_shifted(pack, shift=(3, 5), **settings):
    synthesis = pack.propagation.synthesis
    source = textured(96, 128, seed=1, cell=6) * 255
    style = 255 - source
    target = torch.roll(source, shifts=shift, dims=(2, 3))
    result = synthesis.synthesize(style, source, target, torch.tensor([2.0, 2.0, 2.0]),
                                  settings=synthesis.SynthesisSettings(levels=5, search_vote_iterations=6,
                                                                       patchmatch_iterations=4, **settings))
    return result, torch.roll(style, shifts=shift, dims=(2, 3))


def test_synthesis_finds_a_shifted_target_from_a_random_start(pack):
    result, expected_style = synthesize_shifted(pack)
    inner = (..., slice(10, -10), slice(10, -10))
    ys, xs = torch.meshgrid(torch.arange(96), torch.arange(128), indexing="ij")
    assert torch.equal(result.nnf[0, 0][10:-10, 10:-10], (xs - 5)[10:-10, 10:-10])
    assert torch.equal(result.nnf[0, 1][10:-10, 10:-10], (ys - 3)[10:-10, 10:-10])
    assert (result.style - expected_style)[inner].abs().max() < 1e-3
    assert result.error[inner].mean() < 1.0   # exact matches: only descriptor rounding remains


def test_uniformity_spreads_the_use_of_the_source(pack):
    synthesis = pack.propagation.synthesis
    source = torch.linspace(0, 255, 48).view(1, 1, 1, 48).expand(1, 3, 48, 48).contiguous()   # one value per column
    target = torch.full((1, 3, 48, 48), 128.0)   # matches one column best
    busiest = {}
    for uniformity in (0.0, 20000.0):
        result = synthesis.synthesize(source, source, target, torch.tensor([1.0, 1.0, 1.0]),
                                      settings=synthesis.SynthesisSettings(levels=3, search_vote_iterations=4,
                                                                           patchmatch_iterations=3, uniformity=uniformity))
        busiest[uniformity] = torch.bincount(result.nnf[0, 0].flatten()).max().item()
    assert busiest[0.0] > 0.5 * 48 * 48          # without the term nearly every pixel takes the best column
    assert busiest[20000.0] < 0.6 * busiest[0.0]   # the penalty moves half of them elsewhere


def test_edge_guide_is_a_clipped_laplacian(pack):
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4, 4] = 100
    edges = pack.propagation.guides.edge_guide(image)
    assert edges[0, 0, 4, 4] == 255 and edges[0, 0, 4, 5] == 0   # 400 saturates; −100 clips to 0


def test_guides_are_carried_along_the_flow(pack):
    guides = pack.propagation.guides
    ramp = guides.coordinate_ramp(1, 32, 40)
    flow = torch.zeros(1, 2, 32, 40)
    flow[:, 0] = -2   # each pixel of the new frame was 2 px to the left in the previous frame
    occluded = torch.zeros(1, 1, 32, 40)
    occluded[..., :, :2] = 1
    carried = guides.carry(ramp, flow, occluded)
    assert torch.equal(carried[..., :, 2:], ramp[..., :, :-2])
    near = carried[..., :, 2:6]
    assert near.min() - 1e-4 <= carried[..., :, :2].min() and carried[..., :, :2].max() <= near.max() + 1e-4


def test_a_chain_carries_its_key_along_the_flow_where_the_key_shows(pack):
    """Three steps of a texture moving 2 px right and 1 down, with a patch occluded on the way: the
    chain's flow to the key is (−6, −3), the pixels that came in over the frame's edges or passed
    the occluded patch are not shown by the key, and with warp_share 1 every shown pixel is the
    key's style carried there."""
    chain, synthesis = pack.propagation.chain, pack.propagation.synthesis
    clip, _ = shifted_clip(frames=4, dx=2, dy=1, height=48, width=64, cell=8)
    frames, styles = clip * 255, (1 - clip) * 255
    batch = chain.ChainBatch([chain.start_chain(frames[:1], styles[:1])])
    to_previous = constant_flow(-2, -1, 48, 64)
    for t in (1, 2, 3):
        occluded = torch.zeros(1, 1, 48, 64)
        if t == 2:
            occluded[..., 20:24, 30:34] = 1   # in frame 3 at rows 21-24, columns 32-35
        output, _ = batch.advance(frames[t:t + 1], to_previous, occluded, synthesis.SynthesisSettings(),
                                  warp_share=1.0)
    state = batch.chains[0]
    expected = torch.ones(48, 64, dtype=torch.bool)
    expected[:3] = expected[:, :6] = False
    expected[21:25, 32:36] = False
    assert torch.equal(state.key_shows[0, 0] > 0.5, expected)
    assert torch.equal(state.to_key[0, :, expected], torch.tensor([[-6.0], [-3.0]]).expand(2, int(expected.sum())))
    assert torch.allclose(output[0][:, expected], styles[3][:, expected], atol=1e-3)


def test_a_slow_pan_wears_the_key_away_at_the_frame_edge(pack):
    """Twenty steps of 0.3 px right and 0.2 px down per frame: the flow to the key is (−6, −4)
    wherever the key shows a pixel, pixels whose place in the key lies off the key frame are not
    shown (rounded per step, a 0.3 px motion would never leave the frame, and the carried key would
    read the zero padding there), and the key still shows the rest well inside."""
    chain = pack.propagation.chain
    to_key, shows = torch.zeros(1, 2, 48, 64), torch.ones(1, 1, 48, 64)
    for _ in range(20):
        to_key, shows = chain.carry_to_key(to_key, shows, constant_flow(-0.3, -0.2, 48, 64), torch.zeros(1, 1, 48, 64))
    shown = shows[0, 0] > 0
    assert not shown[:, :6].any() and not shown[:4].any()
    assert shows[0, 0, 12:, 16:].min() > 0.99
    expected = torch.tensor([-6.0, -4.0]).view(2, 1)
    assert torch.allclose(to_key[0][:, shown], expected.expand(2, int(shown.sum())), atol=1e-3)


def test_fill_holes_takes_values_from_around(pack):
    image = torch.full((1, 1, 16, 16), 7.0)
    holes = torch.zeros(1, 1, 16, 16)
    holes[..., 4:12, 4:12] = 1
    filled = pack.propagation.guides.fill_holes(image * (1 - holes), holes)
    assert torch.allclose(filled, image, atol=1e-4)


def test_poisson_solve_matches_a_direct_sparse_solve(pack):
    from scipy.sparse import diags, eye, kron
    from scipy.sparse.linalg import spsolve

    height, width, weight = 24, 32, 2.5
    generator = torch.Generator().manual_seed(0)
    target, grad_x, grad_y = (torch.randn(height, width, generator=generator, dtype=torch.float64) for _ in range(3))
    grad_x[:, -1] = 0
    grad_y[-1, :] = 0

    def difference(n):   # forward difference x[i] − x[i+1], zero last row (Neumann)
        return diags([np.r_[np.ones(n - 1), 0.0], -np.ones(n - 1)], [0, 1], shape=(n, n)).tocsr()

    dx = kron(eye(height), difference(width))
    dy = kron(difference(height), eye(width))
    system = eye(height * width) + weight ** 2 * (dx.T @ dx + dy.T @ dy)
    rhs = target.numpy().ravel() + weight ** 2 * (dx.T @ grad_x.numpy().ravel() + dy.T @ grad_y.numpy().ravel())
    direct = spsolve(system.tocsc(), rhs).reshape(height, width)
    solved = pack.propagation.blending.poisson_solve(target, grad_x, grad_y, weight)
    assert np.abs(solved.numpy() - direct).max() < 1e-6


def test_selection_weights_errors_by_distance_and_sticks_along_the_flow(pack):
    blending = pack.propagation.blending
    assert blending.blend_weights(12, 10, 20) == (0.8, pytest.approx(0.2))
    error_a = torch.full((1, 1, 4, 4), 1.0)
    error_b = torch.full((1, 1, 4, 4), 2.0)
    assert blending.selection(error_a, error_b, 0.5, 0.5).max() == 0      # A's error is lower
    assert blending.selection(error_a, error_b, 0.2, 0.8).min() == 1      # far from A, B wins
    assert blending.selection(error_b, error_a, 1.0, 0.0).max() == 0      # at A's key A is forced
    previous = torch.zeros(1, 1, 4, 4)
    previous[..., 0, 0] = 1
    sticky = blending.selection(error_a, error_b, 0.5, 0.5, previous, torch.zeros(1, 2, 4, 4))
    assert sticky[0, 0, 0, 0] == 1 and sticky.sum() == 1


def test_error_weights_favour_the_side_that_matched_better(pack):
    blending = pack.propagation.blending
    low, high = torch.full((1, 1, 2, 2), 100.0), torch.full((1, 1, 2, 2), 900.0)
    weight_a, weight_b = blending.error_weights(low, low, 0.7, 0.3, 1.0)
    assert torch.allclose(weight_a, torch.tensor(0.7)) and torch.allclose(weight_a + weight_b, torch.tensor(1.0))
    weight_a, _ = blending.error_weights(low, high, 0.5, 0.5, 1.0)      # A matched 9x better
    assert torch.allclose(weight_a, torch.tensor(901.0 / 1002.0))
    sharper, _ = blending.error_weights(low, high, 0.5, 0.5, 2.0)
    assert (sharper > weight_a).all()
    at_key_a, _ = blending.error_weights(high, low, 1.0, 0.0, 1.0)     # at A's own key A is forced
    assert (at_key_a == 1).all()
    reference, _ = blending.error_weights(low, high, 0.5, 0.5, 0.0)    # k = 0: the temporal weights alone
    assert torch.allclose(reference, torch.tensor(0.5))
    # per pixel: A matched the left half better, B the right half; the blend follows each
    error_a = torch.cat((low, high), dim=-1)
    error_b = torch.cat((high, low), dim=-1)
    weight_a, _ = blending.error_weights(error_a, error_b, 0.5, 0.5, 1.0)
    assert (weight_a[..., :2] > 0.85).all() and (weight_a[..., 2:] < 0.15).all()
    # A is darker in its top row, B in its bottom row (the histogram blend compares standardised
    # images, so it is the pattern that tells them apart): the left half takes A's, the right B's
    a, b = torch.zeros(1, 3, 2, 4), torch.ones(1, 3, 2, 4)
    a[..., 1, :], b[..., 1, :] = 0.2, 0.8
    blended = blending.blend_pair(a, b, torch.zeros(1, 1, 2, 4), weight_a, 1 - weight_a)
    top_minus_bottom = blended[:, 0, 0] - blended[:, 0, 1]
    assert (top_minus_bottom[..., :2] < 0).all() and (top_minus_bottom[..., 2:] > 0).all()


def test_histogram_blend_takes_the_selected_images_statistics(pack):
    blending = pack.propagation.blending
    generator = torch.Generator().manual_seed(1)
    a, b, reference = (torch.rand(1, 3, 16, 16, generator=generator) * 200 + 20 for _ in range(3))
    mixed = blending.histogram_blend_lab8(a, b, reference, 0.3, 0.7)
    assert torch.allclose(mixed.mean(dim=(-2, -1)), reference.mean(dim=(-2, -1)), atol=1e-3)
    assert torch.allclose(mixed.std(dim=(-2, -1), correction=0), reference.std(dim=(-2, -1), correction=0), atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_screen_texture_is_what_the_keys_share_at_a_place(pack, seed):
    """Under moving content the estimate follows a grain fixed on the screen; without one it is 1."""
    screen_texture = pack.propagation.screen_texture
    _, style, grain = grained_clip(seed)
    style = style[[0, 5, 10]]
    grain_detail = grain.log() - screen_texture._blur(grain.log(), screen_texture.DETAIL_SIGMA)
    inner = (..., slice(16, -16), slice(16, -16))
    found = screen_texture.estimate_screen_texture(style * grain)
    assert found.shape == (1, 1, 96, 128) and found.dtype == torch.float32
    assert np.corrcoef(found.log()[inner].flatten(), grain_detail[inner].flatten())[0, 1] > 0.6
    assert (found.log()[inner] - grain_detail[inner]).pow(2).mean() < grain_detail[inner].pow(2).mean()
    assert found.log().abs().max() <= screen_texture.LARGEST_LOG + 1e-6
    assert screen_texture.estimate_screen_texture(style).log()[inner].abs().mean() < 0.005
    half = screen_texture.estimate_screen_texture(style * grain, strength=0.5)
    assert torch.allclose(half.log(), found.log() / 2, atol=1e-6)
    assert (screen_texture.estimate_screen_texture((style * grain)[:1]) == 1).all()   # one key: nothing shared
    assert (screen_texture.estimate_screen_texture(style * grain, strength=0.0) == 1).all()
    with pytest.raises(ValueError, match="strength must be in"):
        screen_texture.estimate_screen_texture(style, strength=2.0)
    with pytest.raises(ValueError, match=r"styles must be \[K, 3, H, W\]"):
        screen_texture.estimate_screen_texture(style[:, :1])
