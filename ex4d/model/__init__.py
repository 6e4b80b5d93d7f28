"""Models: the frozen Wan2.1-I2V backbone (``wan``), the EX-4D adapter (``adapter``), their weights (``checkpoint``).

Import the submodules directly (``from ex4d.model.adapter import ...``): importing this package stays cheap
(diffusers and transformers load on first use).
"""
