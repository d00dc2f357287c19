#!/usr/bin/python3
"""Plain PyTorch training loop, the baseline for `cfrec bench train`.

Same model, batch, data and loss as the C++ benchmark: pairwise BPR loss
(CPR eq. 1) on (user, clicked item, uniform catalog negative) triples, users
uniform and items Zipf-like, d=64, batch 2048, one intra-op thread. Embeddings
are sparse (nn.Embedding(sparse=True) + SparseAdam); NeuMF's MLP tower uses
Adam. Data generation is outside the timed region. Prints one JSON line.
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BPRMF(nn.Module):
    def __init__(self, users, items, dim):
        super().__init__()
        self.user = nn.Embedding(users, dim, sparse=True)
        self.item = nn.Embedding(items, dim, sparse=True)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, u, i):
        return (self.user(u) * self.item(i)).sum(-1)


class NeuMF(nn.Module):
    def __init__(self, users, items, dim, hidden=(64, 32)):
        super().__init__()
        self.gmf_user = nn.Embedding(users, dim, sparse=True)
        self.gmf_item = nn.Embedding(items, dim, sparse=True)
        self.mlp_user = nn.Embedding(users, dim, sparse=True)
        self.mlp_item = nn.Embedding(items, dim, sparse=True)
        for e in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(e.weight, std=0.1)
        layers, width = [], 2 * dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers)
        self.predict = nn.Linear(dim + width, 1)

    def forward(self, u, i):
        gmf = self.gmf_user(u) * self.gmf_item(i)
        mlp = self.mlp(torch.cat([self.mlp_user(u), self.mlp_item(i)], -1))
        return self.predict(torch.cat([gmf, mlp], -1)).squeeze(-1)


def make_batches(n, users, items, batch, gen):
    out = []
    log_items = math.log(items)
    for _ in range(n):
        u = torch.randint(0, users, (batch,), generator=gen)
        i = (torch.exp(torch.rand(batch, generator=gen) * log_items).long() - 1)
        i = i.clamp_(0, items - 1)
        j = torch.randint(0, items, (batch,), generator=gen)
        out.append((u, i, j))
    return out


def run(name, model, args, gen):
    sparse = [p for n, p in model.named_parameters() if "user" in n or "item" in n]
    dense = [p for n, p in model.named_parameters() if not ("user" in n or "item" in n)]
    opts = [torch.optim.SparseAdam(sparse, lr=1e-3)]
    if dense:
        opts.append(torch.optim.Adam(dense, lr=1e-3, weight_decay=1e-3))
    batches = make_batches(64, args.users, args.items, args.batch, gen)
    steps, seconds = 0, 0.0
    while seconds < args.seconds:
        for u, i, j in batches:
            t0 = time.perf_counter()
            for o in opts:
                o.zero_grad()
            s = model(torch.cat([u, u]), torch.cat([i, j]))
            loss = -F.logsigmoid(s[: len(u)] - s[len(u):]).mean()
            loss.backward()
            for o in opts:
                o.step()
            seconds += time.perf_counter() - t0
            steps += 1
            if seconds >= args.seconds:
                break
    samples = steps * args.batch
    return {"samples": samples, "steps": steps, "seconds": seconds,
            "samples_per_sec": samples / seconds}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--users", type=int, default=50000)
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rankers", nargs="+", default=["bpr", "neumf"])
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    result = {"bench": "train_pytorch", "torch": torch.__version__,
              "users": args.users, "items": args.items, "batch_size": args.batch,
              "dim": args.dim, "threads": args.threads}
    for name in args.rankers:
        cls = BPRMF if name == "bpr" else NeuMF
        result[name] = run(name, cls(args.users, args.items, args.dim), args, gen)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
