"""Test helper: fit entropy models to fixed latents, so -log2(likelihood) is a meaningful prediction of the real
code length (a random-init prior is not)."""

import torch


def fit_bottleneck(bottleneck, y: torch.Tensor, steps: int) -> None:
    """Minimise a HyperpriorBottleneck's estimated rate (bits) of fixed latents `y` (noise mode), with the
    quantiles trained by aux_loss alongside."""
    main = [p for n, p in bottleneck.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main, 1e-2)
    aux = torch.optim.Adam([bottleneck.entropy_bottleneck.quantiles], 1e-1)
    for _ in range(steps):
        rate = sum((-v.log2()).sum() for v in bottleneck(y, mode="noise")["likelihoods"].values())
        opt.zero_grad()
        rate.backward()
        opt.step()
        a = bottleneck.aux_loss()
        aux.zero_grad()
        a.backward()
        aux.step()


def fit_iframe_entropy_model(model, x: torch.Tensor, y_std: float, steps: int) -> torch.Tensor:
    """Give an IFrameCodec nontrivial latents (g_a's last conv rescaled so y = g_a(x) has std `y_std`), fit its
    bottleneck to them, and return y."""
    with torch.no_grad():
        y = model.g_a(x)
        s = y_std / y.std()
        model.g_a.net[-1].weight.mul_(s)
        model.g_a.net[-1].bias.mul_(s)
        y = model.g_a(x)
    fit_bottleneck(model.bottleneck, y, steps)
    return y
