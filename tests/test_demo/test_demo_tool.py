"""tools/demo.py: arguments and the message when the model is missing."""
import pytest


def test_defaults(demo_tool):
    args = demo_tool.parse_args([])
    assert args.config.endswith('quickstart/interformer_quickstart.py')
    assert args.checkpoint.endswith('quickstart/latest.pth')
    assert (args.host, args.port, args.precision) == ('127.0.0.1', 7860,
                                                      'fp32')
    args = demo_tool.parse_args(['a.py', 'b.pth', '--max-upload-mb', '2.5',
                                 '--precision', 'bf16'])
    assert (args.config, args.max_upload_mb, args.precision) == (
        'a.py', 2.5, 'bf16')


def test_missing_quickstart_model_says_what_to_do(demo_tool, tmp_path,
                                                  monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        demo_tool.main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert 'error:' in err and 'python tools/quickstart.py' in err
    assert 'Traceback' not in err
    with pytest.raises(SystemExit) as info:
        demo_tool.main(['nope.py', 'nope.pth'])
    err = capsys.readouterr().err
    assert 'nope.py' in err and 'quickstart' not in err
