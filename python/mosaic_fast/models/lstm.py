"""LEAF stacked LSTM for Shakespeare: Embedding(V, 8) -> LSTM(8, 256, 2 layers) -> Linear(256, V)."""

from __future__ import annotations

import torch
from torch import nn

from .classifier import ClassifierSpec
from .spec import seeded_module

EMBED = 8
HIDDEN = 256
LAYERS = 2


class StackedLSTM(nn.Module):
    """Reference module. Input int64 (B, T) char ids; logits (B, T, V) or, for the last position only, (B, V)."""

    def __init__(self, vocab: int, sequence_targets: bool) -> None:
        super().__init__()
        self.sequence_targets = sequence_targets
        self.embedding = nn.Embedding(vocab, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.fc = nn.Linear(HIDDEN, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embedding(x))
        logits: torch.Tensor = self.fc(h if self.sequence_targets else h[:, -1])
        return logits


class LSTMSpec(ClassifierSpec):
    """Next-character LSTM; ``vocab`` = number of classes; ``pad_index`` targets are ignored."""

    def __init__(self, vocab: int, *, sequence_targets: bool, pad_index: int | None = None) -> None:
        self.name = "lstm"
        self.num_classes = vocab
        self.sequence_targets = sequence_targets
        self.pad_index = pad_index
        self._template = self.module(0)
        self.layout = self._layout_of(self._template)

    def module(self, seed: int = 0) -> nn.Module:
        return seeded_module(lambda: StackedLSTM(self.num_classes, self.sequence_targets), seed)

    def template(self) -> nn.Module:
        return self._template

    def batched_logits(self, P: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """All nodes at once with per-node weights: bmm cells, python loop over time, autograd backward.

        ``x``: int64 (n, B, T) per-node batches or (B, T) shared. Returns (n, B, T, V) or (n, B, V).
        """
        emb = P["embedding.weight"]  # (n, V, E)
        n = emb.shape[0]
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(n, -1, -1)
        B, T = x.shape[1], x.shape[2]
        nodes = torch.arange(n, device=x.device).view(n, 1, 1)
        seq = emb[nodes, x]  # (n, B, T, E)
        for layer in range(LAYERS):
            w_ih, w_hh = P[f"lstm.weight_ih_l{layer}"], P[f"lstm.weight_hh_l{layer}"]
            bias = (P[f"lstm.bias_ih_l{layer}"] + P[f"lstm.bias_hh_l{layer}"]).unsqueeze(1)
            # Input projections of all time steps in one bmm; only the recurrence is sequential.
            pre = torch.baddbmm(bias, seq.reshape(n, B * T, -1), w_ih.transpose(1, 2))
            pre = pre.view(n, B, T, -1)
            w_hh_t = w_hh.transpose(1, 2)
            h = seq.new_zeros(n, B, HIDDEN)
            c = seq.new_zeros(n, B, HIDDEN)
            outs = []
            for t in range(T):
                gates = torch.baddbmm(pre[:, :, t], h, w_hh_t)
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            seq = torch.stack(outs, dim=2)  # (n, B, T, H)
        if not self.sequence_targets:
            seq = seq[:, :, -1:]
        logits = torch.baddbmm(
            P["fc.bias"].unsqueeze(1), seq.reshape(n, -1, HIDDEN), P["fc.weight"].transpose(1, 2)
        )
        return logits.view(n, B, T, -1) if self.sequence_targets else logits.view(n, B, -1)
