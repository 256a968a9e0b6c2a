"""Model mechanics: loading models and pairs, the architecture adapter, hooks, forwards, readouts (logit lens,
patchscope), MoE routers, padding and divergences."""
