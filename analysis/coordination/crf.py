"""A small linear-chain CRF over the tags O, B, I (analysis.coordination.examples.TAGS), in PyTorch, with the BIO
rule built in: a path that puts I after O, or I first, has probability zero, so decoding never emits it and the
likelihood never spends mass on it. Also the exact probability that a span is one chunk (forward-backward).

Shapes: emissions (B, L, 3) float, mask (B, L) bool with every row's True entries first (a row has at least
one); tags (B, L) long. Scores are natural logarithms.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

O, B, I = 0, 1, 2  # noqa: E741  (the tag names)
_NEG = float("-inf")


class CRF(nn.Module):
    def __init__(self, n_tags: int = 3):
        super().__init__()
        if n_tags != 3:
            raise ValueError("this CRF is for the three tags O, B, I")
        self.transitions = nn.Parameter(torch.zeros(3, 3))  # [from, to]
        self.start = nn.Parameter(torch.zeros(3))
        self.end = nn.Parameter(torch.zeros(3))
        forbid = torch.zeros(3, 3)
        forbid[O, I] = _NEG
        start_forbid = torch.zeros(3)
        start_forbid[I] = _NEG
        self.register_buffer("forbid", forbid, persistent=False)
        self.register_buffer("start_forbid", start_forbid, persistent=False)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(transitions, start, end) with the forbidden moves at -inf."""
        return self.transitions + self.forbid, self.start + self.start_forbid, self.end

    def _forward(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """alpha (B, L, 3): log-sum of the scores of every path prefix ending in each tag, emissions included."""
        trans, start, _ = self.scores()
        alpha = [start + emissions[:, 0]]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha[-1].unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha.append(torch.where(mask[:, t, None], nxt, alpha[-1]))  # past a row's end: carried unchanged
        return torch.stack(alpha, dim=1)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _, _, end = self.scores()
        return torch.logsumexp(self._forward(emissions, mask)[:, -1] + end, dim=1)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        trans, start, end = self.scores()
        zero = emissions.new_zeros(())
        score = start[tags[:, 0]] + torch.where(mask, emissions.gather(2, tags.unsqueeze(2)).squeeze(2), zero).sum(1)
        # where(), not a product with the mask: a forbidden move is -inf, and -inf * 0 is NaN
        score = score + torch.where(mask[:, 1:], trans[tags[:, :-1], tags[:, 1:]], zero).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
        return score + end[last]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tags (which must follow the BIO rule)."""
        return (self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)).mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The most likely tag sequence of each row (Viterbi), as lists of its real length. Never I after O,
        never I first: those moves score -inf and O and B are always open."""
        trans, start, end = self.scores()
        n, length, _ = emissions.shape
        score = start + emissions[:, 0]
        back = []
        for t in range(1, length):
            best, arg = (score.unsqueeze(2) + trans).max(dim=1)
            nxt = best + emissions[:, t]
            keep = mask[:, t, None]
            score = torch.where(keep, nxt, score)
            back.append(torch.where(keep, arg, torch.arange(3).expand(n, 3)))  # past the end: stay
        last = (score + end).argmax(dim=1)
        path = [last]
        for arg in reversed(back):
            path.append(arg.gather(1, path[-1].unsqueeze(1)).squeeze(1))
        tags = torch.stack(path[::-1], dim=1).tolist()
        lengths = mask.sum(1).tolist()
        return [row[:n_] for row, n_ in zip(tags, lengths, strict=True)]

    @torch.no_grad()
    def chunk_probabilities(self, emissions: torch.Tensor, mask: torch.Tensor,
                            chunks: list[list[tuple[int, int]]]) -> list[list[float]]:
        """For each row and each span [s, e) in chunks[row]: the probability, under the CRF, that the words s..e-1
        are exactly one chunk (B at s, I through e-1, and no I at e). Exact, by forward-backward."""
        trans, start, end = (x.double().numpy() for x in self.scores())
        alpha = self._forward(emissions.double(), mask).numpy()
        em = emissions.double().numpy()
        lengths = mask.sum(1).tolist()
        out = []
        for r, spans in enumerate(chunks):
            if not spans:
                out.append([])
                continue
            n = lengths[r]
            beta = np.zeros((n, 3))
            beta[n - 1] = end
            for t in range(n - 2, -1, -1):
                beta[t] = np.logaddexp.reduce(trans + em[r, t + 1] + beta[t + 1], axis=1)
            log_z = np.logaddexp.reduce(alpha[r, n - 1] + end)
            probs = []
            for s, e in spans:
                lp = alpha[r, s, B]
                prev = B
                for t in range(s + 1, e):
                    lp += trans[prev, I] + em[r, t, I]
                    prev = I
                if e >= n:
                    lp += end[prev]
                else:  # the next word is not I: O or B, and whatever follows
                    lp += np.logaddexp(trans[prev, O] + em[r, e, O] + beta[e, O],
                                       trans[prev, B] + em[r, e, B] + beta[e, B])
                probs.append(float(np.exp(min(lp - log_z, 0.0))))
            out.append(probs)
        return out
