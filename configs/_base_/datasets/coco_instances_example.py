# Train on your own annotations in COCO instance format.
#
# 1. Put the images and one COCO JSON (polygons and/or RLE, pycocotools
#    format) somewhere, e.g.
#        data/my_dataset/images/*.jpg
#        data/my_dataset/annotations/instances_train.json
#    `file_name` of each JSON image is relative to `data_prefix.img_path`.
# 2. Use this file as the dataset base of a leaf config (or edit
#    `data_root`, `ann_file` and `data_prefix` below).
#
# Every annotation is a candidate object; one is picked per 512x512 crop.
# `iscrowd=1` annotations become ignore pixels (crowd_as_ignore). Paint
# order is shuffled per sample and the LVIS overlap rule (overlap_thr=0.5)
# applies; set overlap_thr=None to paint every mask later-on-top.
# See data/README.md.
crop_size = (512, 512)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegmentIdMap'),
    dict(type='RandomRescale', ratio_range=(0.5, 2.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PadToMinSize', size=crop_size, pad_val=0, seg_pad_val=0),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='PhotoMetricDistortion'),
    dict(type='ObjectSampler', min_area_ratio=0.0),
    dict(type='PackSegInputs'),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='COCOInstanceDataset',
        data_root='data/my_dataset',
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img_path='images'),
        shuffle_instances=True,
        overlap_thr=0.5,
        crowd_as_ignore=True,
        ignore_file=None,
        pipeline=train_pipeline))

val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
