# InterFormer-Tiny (model only). Despite the name it is the larger variant:
# MAE ViT-L/16 backbone and an I-MSA neck with depths (2, 2, 6, 3), i.e.
# coarse blocks (1, 1, 2, 1) + refine blocks (1, 1, 4, 2). Everything else is
# as in InterFormer-Light. See docs: model.md §4 and §13.
_base_ = ['./interformer_light.py']

model = dict(
    backbone=dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrain/mae_pretrain_vit_large.pth')),
    neck=dict(depths=(2, 2, 6, 3), refine_start=(1, 1, 2, 1)))
