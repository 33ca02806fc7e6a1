"""Networks, quantizers and entropy bottlenecks (torch + compressai only; no Lightning/Hydra)."""
