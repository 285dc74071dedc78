"""Being folded into the model modules (see interformer.models.deploy)."""
