# InterFormer-Light trained on YOUR OWN annotations in COCO instance format
# (polygons and/or RLE). Point the dataset at your data, either by editing
# `configs/_base_/datasets/coco_instances_example.py` or on the command line:
#
#   bash tools/dist_train.sh configs/interformer_light_custom_coco_instances.py 4 \
#       --cfg-options train_dataloader.dataset.data_root=data/my_dataset \
#                     train_dataloader.dataset.ann_file=annotations/train.json \
#                     train_dataloader.dataset.data_prefix.img_path=images
#
# Fine-tuning from a released InterFormer checkpoint instead of the MAE
# weights: add `load_from='work_dirs/.../interformer_light.pth'` and shorten
# the schedule (e.g. `train_cfg.max_iters=20000`, `param_scheduler` ends).
_base_ = [
    './_base_/models/interformer_light.py',
    './_base_/datasets/coco_instances_example.py',
    './_base_/schedules/schedule_320k.py', './_base_/default_runtime.py'
]

optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, decay_rate=0.65))
