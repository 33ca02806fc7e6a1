"""gvc: GAN-based low-latency learned video codec."""
