# The quickstart (tools/quickstart.py): a small InterFormer trained from
# scratch in minutes on 2 CPU cores, on the procedural COCO-panoptic data of
# interformer/quickstart/synthetic.py, through the same pieces as the real
# training: COCOPanopticDataset + the official transforms, ClickSegmentor
# with the real I-MSA neck (depths (1, 1, 2, 1)), UPerHead and FCN auxiliary
# head with the NFL losses, the iterative click simulation, mmengine's
# Runner with an IterBasedTrainLoop.
#
# What differs from configs/interformer_light_coco_lvis_320k.py, and why:
# * backbone: a 4-layer 128-d MAE ViT/16 from random init (no pretrained
#   weights to download) instead of ViT-B; SimpleFPN, neck and heads keep
#   their real widths. BN instead of SyncBN (one process).
# * data: 96x96 crops of the 128-192 px images (rescaled by 0.5-1.25), batch
#   4: on 2 CPU cores small crops and batches give the most updates per
#   second, which is what a from-scratch model needs most. ObjectSampler
#   skips slivers under 1% of the crop (min_area_ratio=0.01).
# * I-MSA pooling ratios scaled to the 96 crop: the stride-4 stage pools its
#   24x24 map to grids of 12, 8, 6 and 5 per side as the real model does at
#   512 (its 512-crop ratios would give 2, 2, 1, 1 here); the stride-8 and
#   stride-16 stages pool to grids of about 6, 4, 3, 2 and 3, 2, 2, 1 at the
#   crop. A pooled grid keeps its size at any input size, but a ratio of 1
#   keeps the whole map, whose keys grow with the image: only the stride-32
#   stage has ratio-1 levels, as in the real model, so a click on a
#   768x1024 image costs what it costs InterFormer-Light (160 ms instead of
#   350 ms with unpooled stride-8/16 levels, on 2 cores).
# * optimisation: from scratch and for a few hundred iterations the
#   official lr (1e-4, tuned for fine-tuning a pretrained MAE over 320k
#   iterations) barely moves the random weights; AdamW with lr 1e-3, a
#   short warmup and no layer-wise decay (there is no pretrained layer to
#   protect) learns the task within the budget.
# * length: a wall-clock budget (TimeBudgetHook) instead of 320k
#   iterations; the poly decay is stretched to end when the time runs out.
#   `time_budget` and `data_root` are set by tools/quickstart.py; the
#   entries that use them refer to them as '${time_budget}' /
#   '${data_root}', resolved when the config is built (after any
#   --cfg-options), so `--cfg-options data_root=DIR` takes effect.
_base_ = [
    './_base_/models/interformer_debug.py', './_base_/default_runtime.py'
]
custom_imports = dict(
    imports=['interformer', 'interformer.quickstart'],
    allow_failed_imports=False)

crop_size = (96, 96)
data_root = 'work_dirs/quickstart/data'
time_budget = 420  # seconds of training

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        img_size=crop_size,
        embed_dims=128,
        num_layers=4,
        num_heads=4,
        drop_path_rate=0.0),
    neck=dict(
        target_size=crop_size,
        pool_ratios=((2, 3, 4, 5), (2, 3, 4, 6), (2, 3, 4, 6), (1, 1, 2, 3)),
        drop_path_rate=0.0),
    # the click simulation exactly as in training (n <= 20, P(n) ~ 0.6^n)
    train_cfg=dict(max_num_clicks=20))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegmentIdMap'),
    dict(type='RandomRescale', ratio_range=(0.5, 1.25)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PadToMinSize', size=crop_size, pad_val=0, seg_pad_val=0),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='PhotoMetricDistortion'),
    dict(type='ObjectSampler', min_area_ratio=0.01),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='COCOPanopticDataset',
        data_root='${data_root}',
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(
            img_path='train2017',
            seg_map_path='annotations/panoptic_train2017'),
        pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

# The click test of tools/quickstart.py: thing segments of the held-out
# generated split (tools/clicktest.py --dataset SyntheticPanopticEvalDataset
# --data-root <data_root> runs the same).
quickstart_eval = dict(
    type='SyntheticPanopticEvalDataset',
    data_root='${data_root}',
    split='val',
    min_area=300)

optim_wrapper = dict(
    type='OptimWrapper',
    # fused: one kernel per step instead of a loop over ~300 parameters
    # (13 ms -> under 1 ms per step on 2 CPU cores)
    optimizer=dict(
        type='AdamW',
        lr=1e-3,
        betas=(0.9, 0.999),
        weight_decay=0.05,
        fused=True),
    clip_grad=None)
max_iters = 100000  # never reached: the time budget ends training
warmup_iters = 30
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        end_factor=1.0,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    # its end is moved to the projected last iteration by TimeBudgetHook
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=0,
        end=max_iters + 1),
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # tools/quickstart.py saves latest.pth itself when the time is up; the
    # hook is kept (never firing) so that default_hooks.checkpoint.interval
    # can be overridden
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=max_iters + 1,
        save_last=False,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [
    dict(type='TimeBudgetHook', budget_s='${time_budget}', update_interval=10),
    dict(type='DamagedImageSummaryHook'),
]
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0, diff_rank_seed=False, deterministic=False)
