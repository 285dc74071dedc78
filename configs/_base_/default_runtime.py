# Runtime shared by every InterFormer config.
default_scope = 'mmseg'
custom_imports = dict(imports=['interformer'], allow_failed_imports=False)

# NCCL on GPUs. tools/train.py switches to gloo (and SyncBN to BN) when a
# distributed launch finds no CUDA (interformer.compat.setup_cpu_distributed).
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

# The official run uses seed 42 (`--seed 42`), the same on every rank.
randomness = dict(seed=42, diff_rank_seed=False, deterministic=False)

# Lists the images a dataset with damaged_images='skip' skipped.
custom_hooks = [dict(type='DamagedImageSummaryHook')]

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
