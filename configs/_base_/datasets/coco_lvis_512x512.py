# Training data of the official InterFormer (training.md §1-2):
# COCO 2017 panoptic train + LVIS v1 train, concatenated and sampled
# uniformly, 512x512 crops, one random segment per crop as the object.
# Folder layout and download scripts: data/README.md.
#
# Normalisation (ImageNet mean/std, BGR->RGB) is done by the model's
# SegDataPreProcessor, not here: the pipeline outputs `inputs` (3, 512, 512)
# uint8 BGR and `gt_sem_seg` (1, 512, 512) with 1 object / 0 background /
# 255 ignore.
crop_size = (512, 512)

# Optional: a JSON list of COCO image ids / file-name prefixes to leave out
# of both datasets (the official 21-image list is not public; None = keep
# everything).
ignore_file = None

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # segment-id map: 0 = no segment, 1..N = candidate objects, 255 = ignore
    dict(type='LoadSegmentIdMap'),
    dict(type='RandomRescale', ratio_range=(0.5, 2.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PadToMinSize', size=crop_size, pad_val=0, seg_pad_val=0),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='PhotoMetricDistortion'),
    # one segment present in the crop, uniformly -> binary 1 / 0 / 255
    dict(type='ObjectSampler', min_area_ratio=0.0),
    dict(type='PackSegInputs'),
]

coco_panoptic_train = dict(
    type='COCOPanopticDataset',
    data_root='data/coco2017',
    ann_file='annotations/panoptic_train2017.json',
    data_prefix=dict(
        img_path='train2017', seg_map_path='annotations/panoptic_train2017'),
    ignore_file=ignore_file,
    pipeline=train_pipeline)

lvis_train = dict(
    type='LVISDataset',
    data_root='data',
    ann_file='lvis/lvis_v1_train.json',
    # LVIS v1 names images by coco_url: <img_path>/train2017/<id>.jpg
    data_prefix=dict(img_path='coco2017'),
    shuffle_instances=True,
    overlap_thr=0.5,
    ignore_file=ignore_file,
    pipeline=train_pipeline)

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ConcatDataset', datasets=[coco_panoptic_train, lvis_train]))

# No validation during training (the official run uses --no-validate);
# the click test (NoC) is a separate tool.
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
