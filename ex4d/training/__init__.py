"""Training the EX-4D adapter on monocular video (method doc, section 6).

* :mod:`~ex4d.training.flow`: the flow-matching objective (shifted training timesteps, timestep weights);
* :mod:`~ex4d.training.optim`: AdamW settings and the warm-up schedule;
* :mod:`~ex4d.training.data`: the shard DataModule with a resumable, rank-aware sampler;
* :mod:`~ex4d.training.module`: :class:`~ex4d.training.module.EX4DTrainingModule` (frozen Wan + adapter);
* :mod:`~ex4d.training.callbacks`: adapter-only checkpoints, throughput / memory / grad-norm logging.

``flow`` and ``optim`` are plain PyTorch; only ``data``, ``module`` and ``callbacks`` import Lightning.
Import the submodules directly (importing this package stays cheap).
"""
