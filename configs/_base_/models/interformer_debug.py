# A tiny InterFormer for tests and quick CPU runs: a 2-layer 96-d MAE ViT
# (random init, no pretrained weights) with the real SimpleFPN, the real
# I-MSA neck (Light depths) and the real heads, with BN instead of SyncBN.
# Trainable parameters: backbone 620,344, neck 1,737,472, decode head
# 634,498, auxiliary head 73,986.
_base_ = ['./interformer_light.py']

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        embed_dims=96, num_layers=2, num_heads=3, init_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg),
    train_cfg=dict(max_num_clicks=3))
