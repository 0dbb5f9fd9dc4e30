//! The dataset downloader against a local HTTP server, and the reader
//! against the real MNIST and Fashion-MNIST when they are available.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use advx::data::fetch::{self, Outcome};
use advx::data::{self, Split};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// A static file server on 127.0.0.1 for one test. It stops when dropped,
/// and in any case after a minute, so a failing test cannot leave it running.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `root`: GET /a/b is the file root/a/b, anything else a 404.
    fn start(root: &Path) -> Server {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let (requests, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, stopped, root) = (requests.clone(), stop.clone(), root.to_path_buf());
        let thread = std::thread::spawn(move || serve(&server, &root, &count, &stopped));
        Server { base: format!("http://127.0.0.1:{port}"), requests, stop, thread: Some(thread) }
    }

    /// The URL of a folder of the served root.
    fn url(&self, folder: &str) -> String {
        format!("{}/{folder}/", self.base)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The server loop, bounded by the stop flag and a one-minute deadline.
fn serve(server: &tiny_http::Server, root: &Path, count: &AtomicUsize, stop: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        count.fetch_add(1, Ordering::SeqCst);
        let relative = request.url().trim_start_matches('/').to_string();
        let path = root.join(&relative);
        let response = match std::fs::read(&path) {
            Ok(bytes) if !relative.contains("..") => tiny_http::Response::from_data(bytes),
            _ => tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404),
        };
        let _ = request.respond(response);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An IDX3 payload of `count` 28x28 images.
fn images_payload(count: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [0x0803, count, 28, 28] {
        bytes.extend_from_slice(&u32::to_be_bytes(v));
    }
    bytes.extend((0..count as usize * 784).map(|i| (i * 7 % 256) as u8));
    bytes
}

/// An IDX1 payload of `count` labels cycling 0..9.
fn labels_payload(count: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [0x0801, count] {
        bytes.extend_from_slice(&u32::to_be_bytes(v));
    }
    bytes.extend((0..count).map(|i| (i % 10) as u8));
    bytes
}

/// The four standard files of a tiny dataset with their payloads.
fn synthetic_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("train-images-idx3-ubyte.gz", images_payload(6)),
        ("train-labels-idx1-ubyte.gz", labels_payload(6)),
        ("t10k-images-idx3-ubyte.gz", images_payload(3)),
        ("t10k-labels-idx1-ubyte.gz", labels_payload(3)),
    ]
}

/// Writes the synthetic files gzip'd into `root/folder`, and returns
/// their checksum table (names and payload SHA-256s).
fn publish(root: &Path, folder: &str) -> Vec<(String, String)> {
    let dir = root.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    synthetic_files()
        .into_iter()
        .map(|(name, payload)| {
            std::fs::write(dir.join(name), gzip(&payload)).unwrap();
            (name.to_string(), sha256_hex(&payload))
        })
        .collect()
}

fn as_table(table: &[(String, String)]) -> Vec<(&str, &str)> {
    table.iter().map(|(f, s)| (f.as_str(), s.as_str())).collect()
}

/// Every entry of `dir`, to check nothing was left behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn fetches_verifies_and_then_skips_present_files() {
    let served = tempfile::tempdir().unwrap();
    let table = publish(served.path(), "mirror");
    let server = Server::start(served.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("mnist");

    let report = fetch::fetch_from("mnist", &as_table(&table), &[server.url("mirror")], &dir).expect("fetch succeeds");
    assert_eq!(report.dir, dir);
    for (file, (name, _)) in report.files.iter().zip(&table) {
        assert_eq!(&file.file, name);
        assert_eq!(file.path, dir.join(name));
        assert_eq!(file.outcome, Outcome::Downloaded { url: format!("{}{name}", server.url("mirror")) });
    }
    let mut expected: Vec<String> = table.iter().map(|t| t.0.clone()).collect();
    expected.sort();
    assert_eq!(entries(&dir), expected, "only the four files, no temporary ones");

    let test = data::load_dir(&dir, "mnist", Split::Test).unwrap();
    assert_eq!((test.len(), test.images.shape()), (3, &[3, 1, 28, 28][..]));
    assert_eq!(test.images[[0, 0, 0, 1]], 7.0 / 255.0);

    let before = server.requests();
    let again = fetch::fetch_from("mnist", &as_table(&table), &[server.url("mirror")], &dir).unwrap();
    assert!(again.files.iter().all(|f| f.outcome == Outcome::AlreadyPresent));
    assert_eq!(server.requests(), before, "present files are not downloaded again");
}

#[test]
fn checksum_mismatch_is_an_error_naming_file_and_url_and_keeps_nothing() {
    let served = tempfile::tempdir().unwrap();
    let mut table = publish(served.path(), "mirror");
    table[1].1 = "00".repeat(32);
    let server = Server::start(served.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("mnist");

    let err = fetch::fetch_from("mnist", &as_table(&table), &[server.url("mirror")], &dir)
        .expect_err("a bad checksum fails the fetch");
    let message = format!("{err:#}");
    let url = format!("{}train-labels-idx1-ubyte.gz", server.url("mirror"));
    assert!(message.contains("train-labels-idx1-ubyte.gz"), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("SHA-256 mismatch"), "{message}");
    // The file before it was kept; the bad one and its temporary file were not.
    assert_eq!(entries(&dir), ["train-images-idx3-ubyte.gz"]);
}

#[test]
fn falls_back_to_the_next_mirror_after_a_404() {
    let served = tempfile::tempdir().unwrap();
    let table = publish(served.path(), "good");
    let server = Server::start(served.path());
    let out = tempfile::tempdir().unwrap();
    let mirrors = [server.url("missing"), server.url("good")];

    let report = fetch::fetch_from("mnist", &as_table(&table), &mirrors, out.path()).unwrap();
    for file in &report.files {
        let url = format!("{}{}", server.url("good"), file.file);
        assert_eq!(file.outcome, Outcome::Downloaded { url });
    }
    assert_eq!(server.requests(), 8, "one 404 and one success per file");
}

#[test]
fn all_mirrors_failing_lists_each_failure() {
    let served = tempfile::tempdir().unwrap();
    let table = publish(served.path(), "good");
    let server = Server::start(served.path());
    let out = tempfile::tempdir().unwrap();
    let mirrors = [server.url("missing"), server.url("gone")];

    let err = fetch::fetch_from("mnist", &as_table(&table), &mirrors, out.path()).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
    assert!(message.contains("/missing/") && message.contains("/gone/"), "{message}");
    assert!(message.contains("404"), "{message}");
    assert!(entries(out.path()).is_empty(), "{:?}", entries(out.path()));
}

#[test]
fn an_uncompressed_download_is_saved_without_gz() {
    let served = tempfile::tempdir().unwrap();
    let dir = served.path().join("raw");
    std::fs::create_dir_all(&dir).unwrap();
    let payload = labels_payload(4);
    // Served under the .gz name but not compressed, as a decompressing proxy would.
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), &payload).unwrap();
    let server = Server::start(served.path());
    let out = tempfile::tempdir().unwrap();
    let sha = sha256_hex(&payload);
    let table = [("t10k-labels-idx1-ubyte.gz", sha.as_str())];

    let report = fetch::fetch_from("mnist", &table, &[server.url("raw")], out.path()).unwrap();
    assert_eq!(report.files[0].path, out.path().join("t10k-labels-idx1-ubyte"));
    assert_eq!(entries(out.path()), ["t10k-labels-idx1-ubyte"]);
}

/// The roots to find the real datasets under: the environment's data path
/// (CI sets ADVX_DATA=../shared/data) and the checkout's shared data folder.
fn real_data_roots() -> Vec<PathBuf> {
    let mut roots = data::data_path();
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    roots
}

/// Counts of each class 0 to 9.
fn class_counts(labels: &[data::Label]) -> [usize; 10] {
    let mut counts = [0; 10];
    for &l in labels {
        counts[l as usize] += 1;
    }
    counts
}

/// Checks every file's payload against the built-in checksum table.
fn assert_checksums(name: &str, dir: &Path) {
    for &(file, sha256) in fetch::checksums(name).unwrap() {
        let stem = file.trim_end_matches(".gz");
        let path = [dir.join(file), dir.join(stem)].into_iter().find(|p| p.is_file()).unwrap();
        assert_eq!(fetch::payload_sha256(&path).unwrap(), sha256, "{}", path.display());
    }
}

#[test]
fn real_mnist_loads_with_known_statistics() {
    let dir = match data::locate_in("mnist", &real_data_roots()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("skipping: real MNIST not available ({e:#})");
            return;
        }
    };
    assert_checksums("mnist", &dir);

    let test = data::load_dir(&dir, "mnist", Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.images.shape(), &[10_000, 1, 28, 28]);
    let test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    assert_eq!(class_counts(&test.labels), test_counts);

    let start = Instant::now();
    let train = data::load_dir(&dir, "mnist", Split::Train).unwrap();
    eprintln!("loaded 60000 training images in {:.2?}", start.elapsed());
    assert_eq!(train.len(), 60_000);
    let train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    assert_eq!(class_counts(&train.labels), train_counts);
    let mean = train.images.iter().map(|&p| f64::from(p)).sum::<f64>() / train.images.len() as f64;
    assert!((mean - 0.1307).abs() < 1e-3, "training pixel mean {mean}");
    assert!(train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
}

#[test]
fn real_fashion_mnist_matches_the_checksum_table() {
    let dir = match data::locate_in("fashion-mnist", &real_data_roots()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("skipping: Fashion-MNIST not available ({e:#})");
            return;
        }
    };
    assert_checksums("fashion-mnist", &dir);
    let test = data::load_dir(&dir, "fashion-mnist", Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(class_counts(&test.labels), [1000; 10]);
}

// ------------------------------------------------- IDX files that never end

/// A FIFO in `dir` fed by a thread with `head`, then zeros until the
/// reader hangs up: a file that never ends. Returns its path and the
/// writer, which reports how many bytes it got written.
fn endless(dir: &Path, name: &str, head: Vec<u8>) -> (PathBuf, JoinHandle<usize>) {
    let path = dir.join(name);
    let made = std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
    let fifo = path.clone();
    let writer = std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new().write(true).open(&fifo).expect("the reader opens it");
        let mut written = 0;
        let zeros = vec![0u8; 1 << 16];
        // Stop when the reader hangs up, or after 4 GiB a bounded reader never asks for.
        while written < 1 << 32 && file.write_all(if written == 0 { &head } else { &zeros }).is_ok() {
            written += if written == 0 { head.len() } else { zeros.len() };
        }
        written
    });
    (path, writer)
}

/// The reader once read a whole file before looking at its header: a
/// stream without end (or a gzip bomb) grew its buffer until the process
/// aborted. It now reads the header, then at most one byte more than the
/// header declares.
#[test]
fn an_idx_file_that_never_ends_is_an_error_after_its_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut head = images_payload(2);
    head.truncate(16);
    let (path, writer) = endless(dir.path(), "endless-images", head);
    let e = format!("{:#}", advx::data::idx::read_images(&path).unwrap_err());
    assert!(e.contains("endless-images") && e.contains("trailing bytes after the 1568 declared"), "{e}");
    let written = writer.join().unwrap();
    assert!(written < 1 << 24, "the reader took {written} bytes of a 1584-byte file");

    let (path, writer) = endless(dir.path(), "endless-labels", labels_payload(3)[..8].to_vec());
    let e = format!("{:#}", advx::data::idx::read_labels(&path).unwrap_err());
    assert!(e.contains("endless-labels") && e.contains("trailing bytes after the 3 declared"), "{e}");
    assert!(writer.join().unwrap() < 1 << 24);

    let (path, writer) = endless(dir.path(), "endless-zeros", vec![0; 4]);
    let e = format!("{:#}", advx::data::idx::read_images(&path).unwrap_err());
    assert!(e.contains("endless-zeros") && e.contains("wrong magic number 0x00000000"), "{e}");
    assert!(writer.join().unwrap() < 1 << 24);
}

/// A header that declares far more than the file holds is an error naming
/// the file, read without allocating what it declares.
#[test]
fn an_idx_header_declaring_more_than_the_file_holds_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut payload = Vec::new();
    for v in [0x0803u32, u32::MAX, 1 << 16, 1 << 16] {
        payload.extend_from_slice(&v.to_be_bytes());
    }
    payload.extend_from_slice(&[7; 100]);
    let path = dir.path().join("huge-header.gz");
    std::fs::write(&path, gzip(&payload)).unwrap();
    let e = format!("{:#}", advx::data::idx::read_images(&path).unwrap_err());
    assert!(e.contains("huge-header.gz") && e.contains("truncated") && e.contains("file has 100"), "{e}");
}

/// CIFAR records: `label_bytes` labels (the last the class) then the red,
/// green and blue planes, pixel (c, y, x) of record i being (i + c * 50 + y + x) % 256.
fn cifar_records(labels: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        bytes.extend_from_slice(label);
        bytes.extend((0..3 * 32 * 32).map(|p| ((i + (p / 1024) * 50 + (p % 1024) / 32 + p % 32) % 256) as u8));
    }
    bytes
}

/// A CIFAR-10 distribution in `dir`: `per_batch` records in each of the six batches.
fn write_cifar10(dir: &Path, per_batch: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let labels: Vec<[u8; 1]> = (0..per_batch).map(|i| [(i * 3 % 10) as u8]).collect();
    let records = cifar_records(&labels.iter().map(|l| &l[..]).collect::<Vec<_>>());
    for file in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
        std::fs::write(dir.join(format!("{file}.bin")), &records).unwrap();
    }
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
}

#[test]
fn cifar10_loads_from_its_binary_batches_with_class_names() {
    let root = tempfile::tempdir().unwrap();
    write_cifar10(&root.path().join("cifar-10-batches-bin"), 4);
    let roots = [root.path().to_path_buf()];
    let test = data::load_in("cifar10", Split::Test, &roots).unwrap();
    assert_eq!(test.images.shape(), &[4, 3, 32, 32]);
    assert_eq!(test.labels, [0, 3, 6, 9]);
    assert_eq!(test.classes.as_ref().map(|c| c[3].as_str()), Some("cat"));
    // Record 2, green plane, row 5, column 7: (2 + 50 + 5 + 7).
    assert_eq!(test.images[[2, 1, 5, 7]], 64.0 / 255.0);
    let train = data::load_in("cifar10", Split::Train, &roots).unwrap();
    assert_eq!((train.len(), train.slice(0..2).unwrap().classes.map(|c| c.len())), (20, Some(10)));
    assert!(data::by_script_name("cifar10").is_some() && data::by_script_name("cifar100").is_some());
}

#[test]
fn cifar100_uses_the_fine_label() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar100").join("cifar-100-binary");
    std::fs::create_dir_all(&dir).unwrap();
    let records = cifar_records(&[&[3, 99], &[19, 42]]);
    std::fs::write(dir.join("train.bin"), &records).unwrap();
    std::fs::write(dir.join("test.bin"), &records).unwrap();
    let names: String = (0..100).map(|i| format!("fine{i}\n")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), names).unwrap();
    let test = data::load_in("cifar100", Split::Test, &[root.path().to_path_buf()]).unwrap();
    assert_eq!(test.labels, [99, 42]);
    assert_eq!(test.classes.as_ref().map(|c| c[42].as_str()), Some("fine42"));
}

#[test]
fn truncated_cifar_files_and_wrong_labels_are_errors_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar-10-batches-bin");
    write_cifar10(&dir, 2);
    let bytes = std::fs::read(dir.join("test_batch.bin")).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &bytes[..bytes.len() - 1]).unwrap();
    let e = format!("{:#}", data::load_dir(&dir, "cifar10", Split::Test).unwrap_err());
    assert!(e.contains("test_batch.bin") && e.contains("not a whole number of 3073-byte records"), "{e}");
    let mut bad = bytes.clone();
    bad[3073] = 10;
    std::fs::write(dir.join("test_batch.bin"), &bad).unwrap();
    let e = format!("{:#}", data::load_dir(&dir, "cifar10", Split::Test).unwrap_err());
    assert!(e.contains("test_batch.bin: record 1 has label 10, but cifar10 has 10 classes"), "{e}");
    std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
    let e = format!("{:#}", data::locate_in("cifar10", &[root.path().to_path_buf()]).unwrap_err());
    assert!(e.contains("cifar-10-batches-bin (some files missing)") && e.contains("advx data fetch cifar10"), "{e}");
}

/// The distribution's archive: its one folder, as the authors pack it.
fn cifar10_archive(per_batch: usize) -> Vec<u8> {
    let files = tempfile::tempdir().unwrap();
    write_cifar10(&files.path().join("cifar-10-batches-bin"), per_batch);
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    tar.append_dir_all("cifar-10-batches-bin", files.path().join("cifar-10-batches-bin")).unwrap();
    tar.append_path_with_name(files.path().join("cifar-10-batches-bin/batches.meta.txt"), "readme.html").unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

#[test]
fn cifar10_fetch_verifies_the_archive_and_unpacks_its_folder() {
    let served = tempfile::tempdir().unwrap();
    let archive = cifar10_archive(3);
    std::fs::create_dir_all(served.path().join("kriz")).unwrap();
    std::fs::write(served.path().join("kriz/cifar-10-binary.tar.gz"), &archive).unwrap();
    let md5 = hex::encode(md5::Md5::digest(&archive));
    let server = Server::start(served.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("cifar10");
    let mirrors = [server.url("missing"), server.url("kriz")];

    let wrong = fetch::Archive { file: "cifar-10-binary.tar.gz", md5: "0123456789abcdef0123456789abcdef" };
    let e = format!("{:#}", fetch::fetch_archive_from("cifar10", wrong, &mirrors, &dir).unwrap_err());
    assert!(e.contains("MD5 mismatch for cifar-10-binary.tar.gz") && e.contains("0123456789abcdef"), "{e}");
    assert!(entries(&dir).is_empty(), "nothing kept of a bad archive: {:?}", entries(&dir));

    let right = fetch::Archive { file: "cifar-10-binary.tar.gz", md5: &md5 };
    let report = fetch::fetch_archive_from("cifar10", right, &mirrors, &dir).unwrap();
    assert_eq!(report.dir, dir.join("cifar-10-batches-bin"));
    assert!(matches!(&report.files[0].outcome, Outcome::Downloaded { url } if url.contains("/kriz/")));
    assert_eq!(entries(&dir), ["cifar-10-batches-bin"], "the folder alone: no archive, no temporary files");
    let test = data::load_in("cifar10", Split::Test, &[out.path().to_path_buf()]).unwrap();
    assert_eq!((test.len(), test.labels.clone()), (3, vec![0, 3, 6]));

    let before = server.requests();
    let again = fetch::fetch_archive_from("cifar10", right, &mirrors, &dir).unwrap();
    assert_eq!(again.files[0].outcome, Outcome::AlreadyPresent);
    assert_eq!(server.requests(), before, "a complete folder is not downloaded again");
}
