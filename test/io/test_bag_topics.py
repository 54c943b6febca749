"""Choosing a bag's image and CameraInfo topics (md2_ros.io.bags), shared by the CLI's BagSource and the
training bag cache: the image_transport sibling first, the only candidate next, else an error naming
the bag and the candidates."""
import pytest

from md2_ros.io.bags import TopicChoiceError, choose_image_topic, choose_info_topic, sibling_info_topic

IMG, CIMG, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo"


def test_sibling_of_raw_and_compressed():
    assert sibling_info_topic("/cam/image_raw") == "/cam/camera_info"
    assert sibling_info_topic("/cam/image_raw/compressed") == "/cam/camera_info"


def test_the_only_image_topic_and_its_sibling_info():
    topics = {"/a/image_raw": (IMG, 3), "/a/camera_info": (INFO, 3), "/b/camera_info": (INFO, 1), "/imu": ("x", 9)}
    assert choose_image_topic(topics, "b.mcap") == "/a/image_raw"
    assert choose_info_topic(topics, "b.mcap", "/a/image_raw") == "/a/camera_info"
    assert choose_info_topic({"/x/info": (INFO, 1)}, "b.mcap", "/a/image_raw") == "/x/info"   # the only one


@pytest.mark.parametrize("topics, topic, words", [
    ({"/a/image_raw": (IMG, 1), "/b/image_raw/compressed": (CIMG, 1)}, None,
     ["b.mcap", "several image topics", "/a/image_raw", "/b/image_raw/compressed", "use --topic"]),
    ({"/imu": ("sensor_msgs/msg/Imu", 1)}, None, ["b.mcap", "no image topics", "/imu"]),
    ({"/a/image_raw": (IMG, 1)}, "/nope", ["b.mcap", "/nope is not in this bag", "/a/image_raw"]),
    ({"/a/image_raw": (IMG, 1), "/imu": ("sensor_msgs/msg/Imu", 1)}, "/imu", ["/imu is sensor_msgs/msg/Imu"]),
])
def test_image_topic_errors_name_the_bag_and_the_candidates(topics, topic, words):
    with pytest.raises(TopicChoiceError) as err:
        choose_image_topic(topics, "b.mcap", topic, hint="use --topic")
    assert all(w in str(err.value) for w in words), str(err.value)


def test_info_topic_ambiguous_missing_or_wrong():
    two = {"/a/image_raw": (IMG, 1), "/x/camera_info": (INFO, 1), "/y/camera_info": (INFO, 1)}
    assert choose_info_topic(two, "b.mcap", "/a/image_raw", required=False) is None      # inference: no cloud
    with pytest.raises(TopicChoiceError, match="cannot tell which CameraInfo.*/x/camera_info, /y/camera_info.*pass it"):
        choose_info_topic(two, "b.mcap", "/a/image_raw", hint="pass it")
    with pytest.raises(TopicChoiceError, match="b.mcap has no sensor_msgs/msg/CameraInfo topic"):
        choose_info_topic({"/a/image_raw": (IMG, 1)}, "b.mcap", "/a/image_raw")
    with pytest.raises(TopicChoiceError, match="CameraInfo topic /z not found; CameraInfo topics: /x/camera_info"):
        choose_info_topic(two, "b.mcap", "/a/image_raw", "/z")
