# InterFormer-Light (MAE ViT-B/16 backbone, I-MSA depths (1, 1, 2, 1)) on
# COCO panoptic + LVIS, 512x512 crops, 4 images/GPU x 4 GPUs, 320k
# iterations, as in the official release:
#   CUDA_VISIBLE_DEVICES=0,1,2,3 bash tools/dist_train.sh \
#       configs/interformer_light_coco_lvis_320k.py 4 --seed 42 --no-validate
_base_ = [
    './_base_/models/interformer_light.py',
    './_base_/datasets/coco_lvis_512x512.py',
    './_base_/schedules/schedule_320k.py', './_base_/default_runtime.py'
]

# Layer-wise lr decay over the 12 ViT-B blocks (model.md §14).
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, decay_rate=0.65))
