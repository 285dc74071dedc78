# InterFormer-Light (model only): MAE ViT-B/16 + SimpleFPN backbone (run once
# per image), I-MSA neck with depths (1, 1, 2, 1) and no refine blocks, and a
# UPerHead on 2 classes (run per click). Trained with the Normalized Focal
# Loss (decode 1.0, auxiliary FCN head 0.4). See docs: model.md.
#
# The backbone starts from the official MAE ViT-B weights; put them at the
# path below (pretrain/README.md) or override `model.backbone.init_cfg`.
# Tests and parity checks build with `init_cfg=None`.
#
# The heads use SyncBN like the official config. It also runs on CPU outside
# DDP (plain BN behaviour); CPU *distributed* training needs BN instead, which
# tools/train.py switches to (interformer.compat.setup_cpu_distributed).
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=0,
    size=(512, 512),
    # evaluation keeps the native size, zero-padded (after normalisation)
    # at the bottom/right to a multiple of 32
    test_cfg=dict(size_divisor=32))
model = dict(
    type='ClickSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MAEWithSimpleFPN',
        img_size=(512, 512),
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        drop_path_rate=0.1,
        init_values=1.0,
        out_dims=(32, 64, 128, 256),
        rescales=(4, 2, 1, 0.5),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrain/mae_pretrain_vit_base.pth')),
    neck=dict(
        type='IMSA',
        target_size=(512, 512),
        in_channels=(32, 64, 128, 256),
        num_heads=(1, 2, 4, 8),
        depths=(1, 1, 2, 1),
        refine_start=(1, 1, 2, 1),
        mlp_ratio=(8, 8, 4, 4),
        strides=(4, 2, 2, 2),
        pool_ratios=((12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6),
                     (1, 2, 3, 4)),
        drop_path_rate=0.1),
    decode_head=dict(
        type='UPerHead',
        in_channels=[32, 64, 128, 256],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=64,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='NormalizedFocalLoss', loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=128,
        in_index=2,
        channels=64,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='NormalizedFocalLoss', loss_weight=0.4)),
    # click simulation (interformer/interaction/click_simulation.py)
    train_cfg=dict(
        max_num_clicks=20,
        gamma=0.6,
        first_click_k=1.0,
        extra_click_k=1.7,
        inner_radius=5),
    # zoom-in keys are read only by ClickSegmentorZoomIn
    test_cfg=dict(
        mode='whole', zoom_in_start_step=1, expand_ratio=1.4, min_size=32))
