# InterFormer-Tiny (despite the name the larger model: MAE ViT-L/16 backbone,
# I-MSA depths (2, 2, 6, 3)) on COCO panoptic + LVIS, 512x512 crops,
# 4 images/GPU x 4 GPUs, 320k iterations, as in the official release:
#   CUDA_VISIBLE_DEVICES=0,1,2,3 bash tools/dist_train.sh \
#       configs/interformer_tiny_coco_lvis_320k.py 4 --seed 42 --no-validate
_base_ = [
    './_base_/models/interformer_tiny.py',
    './_base_/datasets/coco_lvis_512x512.py',
    './_base_/schedules/schedule_320k.py', './_base_/default_runtime.py'
]

# Layer-wise lr decay over the 24 ViT-L blocks (model.md §14).
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24, decay_rate=0.75))
