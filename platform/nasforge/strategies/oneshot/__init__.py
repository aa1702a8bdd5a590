"""Weight-sharing NAS: ENAS (Pham et al. 2018), random sampling with weight sharing (Li & Talwalkar 2019) and DARTS (Liu et al. 2019).

``plugin``: registers ``strategy="enas"``, ``"rsws"`` and ``"darts"``; ``phase_options``: their options
and the supernet phase's job (no torch); ``paths``: where the phase's architectures come from (the
controller, or uniform draws); ``phase``: the supernet phase itself (imports torch); ``phases``: which phase a strategy runs; ``relaxation``
and ``darts_phase``: DARTS's architecture parameters and its phase; ``phase_checkpoint``: the
checkpoints in the supernet's MLflow run; ``retrain_sampler``: the Optuna sampler that hands the top
architectures to ordinary trials. See docs/weight_sharing.md.
"""
