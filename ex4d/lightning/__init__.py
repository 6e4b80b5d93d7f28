"""Lightning wrappers of the pipelines for inference: :class:`~ex4d.lightning.predict.GeneratePredictModule` runs
the generation stage under ``trainer.predict`` (many videos, spread over GPUs).

The pipelines themselves (:mod:`ex4d.pipelines`) import neither Lightning nor Hydra; this package is the layer
above them that may import Lightning (with :mod:`ex4d.training`, the training LightningModule, and the runners).
"""
