# 320k-iteration schedule of the official InterFormer (training.md §4).
#
# AdamW with layer-wise lr decay: mmseg's LearningRateDecayOptimizerConstructor
# ('layer_wise') gives the group of layer id i (0 = patch/pos embed and cls
# token, k+1 = ViT block k, L+1 = everything outside the ViT) the learning rate
# lr * decay_rate ** (L + 1 - i) and no weight decay to 1-D parameters and
# biases (model.md §14). It is the non-deprecated name of mmseg's
# LayerDecayOptimizerConstructor (which takes `layer_decay_rate` instead of
# `decay_rate` and computes the same groups). Leaf configs set num_layers and
# decay_rate of their ViT (Light: 12 / 0.65, Tiny: 24 / 0.75).
#
# fused=True: one multi-tensor kernel per parameter group instead of a
# Python loop over every tensor (same update rule; CPU and CUDA). Measured
# by tools/benchmark_train.py (README, Training speed).
optimizer = dict(
    type='AdamW',
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.05,
    fused=True)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=optimizer,
    constructor='LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(
        num_layers=12, decay_rate=0.65, decay_type='layer_wise'))

# mmcv 1.x "poly + linear warmup": the warmup factor multiplies the poly value
# of the same iteration, and poly counts from iteration 0 (not from the end
# of the warmup). mmengine composes overlapping schedulers multiplicatively,
# so both start at 0; its LinearLR/PolyLR reach their end value at
# `end - 1`, hence the `+ 1`. For 0-based iteration t this gives exactly
#   lr(t) = lr * (r + (1 - r) * min(t, 1500) / 1500) * (1 - t / 320000)
max_iters = 320000
warmup_iters = 1500
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        end_factor=1.0,
        by_epoch=False,
        begin=0,
        end=warmup_iters + 1),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=0,
        end=max_iters + 1),
]

# No validation during training (the official run uses --no-validate).
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=200, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Writes iter_N.pth and last_checkpoint atomically; keeps every
    # checkpoint like the official run (set max_keep_ckpts to limit disk).
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=20000,
        max_keep_ckpts=-1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
