"""The syntax stream: differentiable rate and exact, compact coding."""

from __future__ import annotations

import pytest
torch = pytest.importorskip("torch")

from cgdm_codec.diffusion_config import SyntaxConfig
from cgdm_codec.entropy_models.syntax_prior import SyntaxPrior

pytestmark = pytest.mark.torch


@pytest.fixture
def prior():
    p = SyntaxPrior(SyntaxConfig())
    with torch.no_grad():
        p.mean.copy_(torch.linspace(-2, 2, 24))
        p.log_scale.copy_(torch.linspace(-1, 2, 24))
    p.update_tables()
    return p


def test_tables_needed_before_coding():
    with pytest.raises(RuntimeError):
        SyntaxPrior(SyntaxConfig()).encode_syntax(torch.zeros(24, dtype=torch.long))


def test_round_trip_random_vectors(prior):
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        scale = float(torch.rand(1, generator=gen)) * 20
        sym = (torch.randn(24, generator=gen) * scale).round().long().clamp(-63, 63)
        data = prior.encode_syntax(sym)
        assert torch.equal(prior.decode_syntax(data), sym)


def test_extremes_round_trip_and_clamp(prior):
    for sym in (torch.tensor([63, -63] * 12), torch.full((24,), -63), torch.full((24,), 63)):
        assert torch.equal(prior.decode_syntax(prior.encode_syntax(sym)), sym)
    sym = torch.tensor([63, -63] * 12)
    out = prior.decode_syntax(prior.encode_syntax(sym * 5))
    assert torch.equal(out, sym)  # out-of-range symbols are clamped to the coded range


def test_zero_vector_is_a_few_bytes():
    p = SyntaxPrior(SyntaxConfig())
    p.update_tables()
    data = p.encode_syntax(torch.zeros(24, dtype=torch.long))
    assert len(data) <= 8
    assert torch.equal(p.decode_syntax(data), torch.zeros(24, dtype=torch.long))
    with torch.no_grad():
        p.log_scale.fill_(-3.0)  # a confident prior: zeros cost almost nothing
    p.update_tables()
    data = p.encode_syntax(torch.zeros(24, dtype=torch.long))
    assert len(data) <= 4  # what remains is the range coder's flush
    assert torch.equal(p.decode_syntax(data), torch.zeros(24, dtype=torch.long))


def test_rate_is_differentiable_and_close_to_coded_size(prior):
    gen = torch.Generator().manual_seed(1)
    draws = torch.randn(64, 24, generator=gen) * prior.scale().detach() + prior.mean.detach()
    values = draws.clone().requires_grad_()
    bits = prior.bits(prior.add_noise(values, gen))
    bits.sum().backward()
    assert bits.shape == (64,) and values.grad is not None and prior.log_scale.grad is not None
    sym = draws.round().long()
    coded = sum(len(prior.encode_syntax(s)) * 8 for s in sym)
    with torch.no_grad():
        ideal = float(prior.bits(sym.float()).sum())
    assert ideal < coded < ideal + 64 * 32  # at most about 4 bytes of flush per vector


def test_tables_are_deterministic_integers(prior):
    t = prior.table.clone()
    prior.update_tables()
    assert t.dtype == torch.int32 and torch.equal(t, prior.table)
    assert int(t.min()) >= 1 and int(t.sum(1).max()) <= 1 << 16
