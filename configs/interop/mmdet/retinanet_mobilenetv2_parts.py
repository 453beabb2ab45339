# An mmdet 3.3 project config that uses the plugin: a RetinaNet part detector
# (trained and tested by mmdet's own tools) and, side by side in the same
# file, a PatchCore anomaly model whose backbone is the detector's, loaded
# from the detector's checkpoint. The file is written the way mmdet projects
# write theirs (string types in mmdet's default scope, `custom_imports`),
# since mmdet's tools load it; the plugin's own configs are new-style. It
# inherits nothing: mmengine 0.10.7 resolves `mmdet::` base configs with
# pkg_resources, which setuptools 81 and newer no longer ship.
#
#   python $MMDET/.mim/tools/train.py configs/interop/mmdet/retinanet_mobilenetv2_parts.py
#   python $MMDET/.mim/tools/test.py configs/interop/mmdet/retinanet_mobilenetv2_parts.py \
#       work_dirs/retinanet_mobilenetv2_parts/epoch_24.pth \
#       --cfg-options test_evaluator.format_only=True \
#       test_evaluator.outfile_prefix=work_dirs/retinanet_mobilenetv2_parts/detections
#
# (`MMDET=$(python -c "import mmdet, os; print(os.path.dirname(mmdet.__file__))")`).
# The second command writes detections.bbox.json: the results file that
# BoxCropDataset and `tools/infer.py --boxes` read (configs/interop/patchcore_boxes_coco.py).
# Layout of the data (COCO, one category per part type):
#   <data_root>/images/*.png
#   <data_root>/annotations/train.json, test.json
default_scope = 'mmdet'
# registers the plugin's datasets, models and metrics (scope `anomaly_plugin`)
custom_imports = dict(imports=['anomaly_plugin'], allow_failed_imports=False)

data_root = 'data/parts/'
classes = ('bolt', 'nut')
# ImageNet MobileNetV2 (`make weights`: nothing is downloaded)
imagenet_checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
work_dir = 'work_dirs/retinanet_mobilenetv2_parts'
max_epochs = 24

model = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    # MobileNetV2 out_indices (2, 4, 6): 32, 96 and 320 channels at strides 8, 16, 32
    backbone=dict(type='MobileNetV2', out_indices=(2, 4, 6),
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=dict(type='Pretrained', checkpoint=imagenet_checkpoint)),
    neck=dict(type='FPN', in_channels=[32, 96, 320], out_channels=64, start_level=0,
              add_extra_convs='on_input', num_outs=5),
    bbox_head=dict(
        type='RetinaHead', num_classes=len(classes), in_channels=64, stacked_convs=2,
        feat_channels=64,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                      ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5, class_agnostic=True),
                  max_per_img=100))

# the parts are about 30 px in 128x96 scenes: scaled 2x for the smallest anchors (32 px)
scale = (256, 192)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type='CocoDataset', data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/train.json', data_prefix=dict(img='images/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=8), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CocoDataset', data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/test.json', data_prefix=dict(img='images/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/test.json',
                     metric='bbox', format_only=False)
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[max_epochs * 2 // 3], gamma=0.1),
]
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
                     clip_grad=dict(max_norm=35, norm_type=2))

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
visualizer = dict(type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer')
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
# The plugin's hook stores the message hub's history as plain tensors and
# numbers: with torch >= 2.6, mmengine 0.10's torch.load is weights-only and
# refuses the HistoryBuffer objects mmdet's runner otherwise saves, so
# without it mmdet's own test tool cannot load these checkpoints.
custom_hooks = [dict(type='anomaly_plugin.PlainCheckpointHook')]

# The anomaly model of configs/interop/patchcore_boxes_coco.py, built from
# this file's scope: the detector's own MobileNetV2 stages 2 and 4 (32
# channels at stride 8, 96 at stride 16), their weights read from the
# `backbone.` entries of the detector's checkpoint.
detector_checkpoint = work_dir + f'/epoch_{max_epochs}.pth'
anomaly_model = dict(
    type='anomaly_plugin.PatchCore',
    data_preprocessor=dict(type='anomaly_plugin.AnomalyDataPreprocessor'),
    backbone=dict(type='anomaly_plugin.FeatureExtractor', pool_size=3,
                  backbone=dict(type='mmdet.MobileNetV2', out_indices=(2, 4),
                                init_cfg=dict(type='Pretrained', checkpoint=detector_checkpoint,
                                              prefix='backbone.'))),
    memory_bank=dict(type='anomaly_plugin.KNNMemoryBank', coreset_ratio=0.1,
                     projection_dim=128, coreset_mode='exact', chunk_size=1024),
    num_neighbors=9,
    postprocess=dict(sigma=4.0))
