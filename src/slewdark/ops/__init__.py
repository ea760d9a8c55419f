"""Operations around the pipeline.

Tracking (every MLflow call), lineage, provenance, release, profiles and inspection.
"""
