"""A linear scorer fitted to frozen features with the reranker's own loss: softmax cross-entropy over groups of
one positive (first) and its negatives. Used to read relevance at any layer (analysis/probing.py) and to start
the score head from a probe instead of at random (train/probe_head.py)."""

import torch
from torch import nn


def fit_probe(x: torch.Tensor, group_size: int, l2: float) -> nn.Linear:
    """A linear scorer on standardised features, fitted by L-BFGS; `x` holds the groups' pairs in order."""
    mean, std = x.mean(dim=0), x.std(dim=0) + 1e-6
    z = (x - mean) / std
    w = torch.zeros(x.size(1), requires_grad=True)
    optimizer = torch.optim.LBFGS([w], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
    target = torch.zeros(x.size(0) // group_size, dtype=torch.long)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy((z @ w).view(-1, group_size), target) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    probe = nn.Linear(x.size(1), 1)
    with torch.no_grad():
        probe.weight.copy_((w / std).unsqueeze(0))
        probe.bias.fill_(-(mean * w / std).sum())
    return probe
