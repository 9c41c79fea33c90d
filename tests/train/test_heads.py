"""Several heads answering together ([model] heads): their mean logit, streamed like one head,
trained each on its own loss, exported and run by the device unchanged."""

from __future__ import annotations

import pytest
import torch

from train.model import Head, Heads, ModelConfig, combine, make_head


def test_heads_answer_with_their_mean_logit_and_stream_like_one():
    torch.manual_seed(0)
    model = make_head(ModelConfig(hidden=8, layers=2, dropout=0.0, heads=3)).eval()
    assert isinstance(model, Heads) and len(model.members) == 3
    emb = torch.randn(2, 25, 96)
    whole = model(emb)
    members = torch.stack([m(emb) for m in model.members])
    torch.testing.assert_close(whole, members.mean(0), atol=1e-5, rtol=0)
    # chunk by chunk with the stacked state: the same as the whole sequence
    h, parts = model.initial_state(2), []
    assert h.shape == (3 * 2, 2, 8)
    for chunk in emb.split([6, 1, 11, 7], dim=1):
        out, h = model.step(chunk, h)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=0)
    # training's view: one batch per head, each head's own logits
    own = model([emb, emb[:1], emb[:, :7]])
    assert [tuple(x.shape) for x in own] == [(2, 25), (1, 25), (2, 7)]
    torch.testing.assert_close(own[2], model.members[2](emb[:, :7]), atol=0, rtol=0)
    with pytest.raises(ValueError, match="one batch and one seed per head"):
        model([emb, emb])
    # not their mean probability: heads far apart (one sure, one doubtful) answer the mean logit
    with torch.no_grad():
        for m, bias in zip(model.members, (6.0, -2.0, 0.0)):
            m.out.bias.add_(bias)
    apart = torch.stack([m(emb) for m in model.members])
    torch.testing.assert_close(model(emb), apart.mean(0), atol=1e-5, rtol=0)
    assert (torch.sigmoid(model(emb)) - torch.sigmoid(apart).mean(0)).abs().min() > 0.1


def test_heads_start_different_and_one_head_is_the_plain_head():
    torch.manual_seed(1)
    model = make_head(ModelConfig(hidden=8, layers=1, heads=2))
    a, b = (m.out.weight.detach() for m in model.members)
    assert not torch.allclose(a, b)
    one = make_head(ModelConfig(hidden=8, layers=1, heads=1))
    assert type(one) is Head and [x.shape for x in one([torch.randn(1, 4, 96)])] == [(1, 4)]
    # checkpoints from before `heads` existed say nothing of it: they hold one head
    assert ModelConfig.from_dict({"hidden": 8}) == ModelConfig(hidden=8, heads=1)
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig() and ModelConfig().heads == 3


def test_separately_trained_heads_combine_into_one_that_answers_their_mean():
    torch.manual_seed(2)
    cfg = ModelConfig(hidden=8, layers=1, dropout=0.0)
    a, b = Head(cfg).eval(), make_head(ModelConfig(hidden=8, layers=1, dropout=0.0, heads=2)).eval()
    states = [
        {"model_config": a.cfg.to_dict(), "model": a.state_dict()},
        {"model_config": b.cfg.to_dict(), "model": b.state_dict()},
    ]
    mc, weights = combine(states)
    assert mc.heads == 3
    model = make_head(mc).eval()
    model.load_state_dict(weights)
    emb = torch.randn(1, 12, 96)
    want = torch.stack([a(emb), *(m(emb) for m in b.members)]).mean(0)
    torch.testing.assert_close(model(emb), want, atol=1e-5, rtol=0)
    other = {"model_config": ModelConfig(hidden=9, layers=1).to_dict(), "model": {}}
    with pytest.raises(ValueError, match="different \\[model\\] settings"):
        combine([states[0], other])
