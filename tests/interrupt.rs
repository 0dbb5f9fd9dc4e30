//! Ctrl-C, in its own test binary: the flag is process-wide, and other
//! tests running beside this one must not see it.

use advx::interrupt::{self, Signal};
use advx::runtime::Device;
use advx::session::Session;

#[test]
fn ctrl_c_stops_an_operation_and_keeps_earlier_outputs() {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    s.run("model fc100 = onnx \"models/mnist/fc100-100-10.onnx\"\nlet test = mnist.test[0..300]").unwrap();
    interrupt::request(Signal::Interrupt);
    let result = s.execute("show 1\nshow evaluate fc100 on test");
    interrupt::reset();
    assert_eq!(result.outputs.len(), 1);
    assert!(result.error.unwrap().render(false).contains("interrupted"));
    s.run("show evaluate fc100 on test").expect("runs again after the interrupt");
}
